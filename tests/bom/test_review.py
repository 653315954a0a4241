"""The attacker review of `merkle bom` (docs/threat-model.md, "The ML-BOM"): each finding's attack, run
through the CLI or the library, and what now refuses it."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli


def _payload(bundle: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"]))


def _sign(statement: dict, key: Path, out: Path) -> Path:
    from merkle.signing import statements
    from merkle.signing.envelope import Statement
    from merkle.signing.keys import load_private_key

    stmt = Statement(
        tuple((s["name"], s["digest"]) for s in statement["subject"]),
        statement["predicateType"],
        statement["predicate"],
    )
    out.write_bytes(statements.sign_statement(stmt, load_private_key(str(key))).to_json())
    return out


def _kinds(store: Path) -> list[str]:
    r = run_cli("store", "list", "--store", str(store), "--json")
    assert r.returncode == 0, r.stderr
    return sorted(b["kind"] for b in json.loads(r.stdout))


@pytest.fixture(scope="module")
def signed_bom(signed, tmp_path_factory) -> Path:
    """A signed BOM of the model verified against its (unversioned) bundle, with --sha256."""
    model, key, bundle = signed
    out = tmp_path_factory.mktemp("review") / "bom.bundle"
    r = run_cli("bom", str(model), str(bundle), "--key", f"{key}.pub", "--sha256", "--sign", str(key),
                "-o", str(out), "--no-store")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def _check(model: Path, key: Path, bom: Path, *more: str):
    return run_cli("bom", str(model), "--check", str(bom), "--key", f"{key}.pub", *more)


# Finding 3: a subject digest that is not lower-case hex poisoned the store's index.


@pytest.mark.parametrize("mutation", ["upper-case-digest", "short-digest", "unknown-digest-key"], ids=lambda m: m)
def test_a_bom_subject_digest_that_is_not_a_root_is_refused_and_not_kept(signed, signed_bom, tmp_path, mutation):
    model, key, _ = signed
    statement = _payload(signed_bom)
    ((dkey, digest),) = statement["subject"][0]["digest"].items()
    if mutation == "upper-case-digest":
        statement["subject"][0]["digest"] = {dkey: digest.upper()}
    elif mutation == "short-digest":
        statement["subject"][0]["digest"] = {dkey: digest[:62]}
    else:
        statement["subject"][0]["digest"] = {"sha512": digest}
    store = tmp_path / "store"
    r = _check(model, key, _sign(statement, key, tmp_path / "odd.bundle"), "--store", str(store))
    assert r.returncode == 1
    assert_one_line_error(r, "subject digest")
    assert _kinds(store) == []  # the index still loads, and holds nothing of it


def test_a_policy_result_subject_digest_is_checked_too():
    from merkle.errors import BundleError
    from merkle.signing import statements

    log = {"version": "2.1.0", "runs": [{"results": []}]}
    good = statements.result_statement("m", "merkle-blake3", "ab" * 32, log)
    assert statements.interpret(good, (), b"").root_hex == "ab" * 32
    for key, digest in (("merkle-blake3", "AB" * 32), ("merkle-blake3", "ab" * 31), ("md5", "ab" * 32)):
        with pytest.raises(BundleError, match="subject digest"):
            statements.interpret(statements.result_statement("m", key, digest, log), (), b"")


def test_a_bom_whose_claims_do_not_hold_is_not_kept(signed, signed_bom, tmp_path):
    """The claims are read before the store keeps the bundle: a BOM that does not describe its subject is
    refused and leaves nothing behind."""
    model, key, _ = signed
    statement = _payload(signed_bom)
    for p in statement["predicate"]["components"][0]["components"][0]["properties"]:
        if p["name"] == "merkle:root":
            p["value"] = "00" * 32
    store = tmp_path / "store"
    r = _check(model, key, _sign(statement, key, tmp_path / "bad.bundle"), "--store", str(store))
    assert r.returncode == 1
    assert_one_line_error(r, "do not add up to its merkle:root")
    assert _kinds(store) == []
    r = _check(model, key, signed_bom, "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert _kinds(store) == ["bom"]


# Finding 2: an old signed BOM re-validated a rolled-back tree.


@pytest.fixture(scope="module")
def versions(signed, tmp_path_factory) -> tuple[Path, Path, Path, Path, Path]:
    """(v1 tree, key, store that verified v2, signed BOM of v1, v1 bundle): the attacker restored v1."""
    model, key, _ = signed
    d = tmp_path_factory.mktemp("rollback")
    v1, v2, store = d / "v1", d / "v2", d / "store"
    shutil.copytree(model, v1)
    shutil.copytree(model, v2)
    (v2 / "config.json").write_text('{"patched": true}\n')
    for tree, version in ((v1, "1"), (v2, "2")):
        r = run_cli("build", str(tree), "--sign", str(key), "--version", version, "--name", "model",
                    "-o", str(d / f"v{version}.bundle"), "--no-store")  # fmt: skip
        assert r.returncode == 0, r.stderr
    bom = d / "bom-v1.bundle"
    r = run_cli("bom", str(v1), str(d / "v1.bundle"), "--key", f"{key}.pub", "--sign", str(key), "-o", str(bom),
                "--no-store")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_cli("verify", str(v2), str(d / "v2.bundle"), "--key", f"{key}.pub", "--store", str(store))
    assert r.returncode == 0, r.stderr
    return v1, key, store, bom, d / "v1.bundle"


def test_a_bom_records_the_version_and_expiry_it_restates(versions, tmp_path):
    v1, key, _, bom, _ = versions
    props = {p["name"]: p["value"] for p in _payload(bom)["predicate"]["components"][0]["properties"]}
    assert props["merkle:version"] == "1" and "merkle:expires" not in props
    bundle, out = tmp_path / "v3.bundle", tmp_path / "bom.bundle"
    r = run_cli("build", str(v1), "--sign", str(key), "--version", "3", "--expires", "2999-01-31T00:00:00Z",
                "-o", str(bundle), "--no-store")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_cli("bom", str(bundle), "--key", f"{key}.pub", "--sign", str(key), "-o", str(out), "--no-store")
    assert r.returncode == 0, r.stderr
    props = {p["name"]: p["value"] for p in _payload(out)["predicate"]["components"][0]["properties"]}
    assert props["merkle:version"] == "3" and props["merkle:expires"] == "2999-01-31T00:00:00Z"
    statement = _payload(out)
    for p in statement["predicate"]["components"][0]["properties"]:
        if p["name"] == "merkle:expires":
            p["value"] = "2001-01-31T00:00:00Z"
    r = _check(v1, key, _sign(statement, key, tmp_path / "expired.bundle"), "--no-store")
    assert r.returncode == 1
    assert_one_line_error(r, "expired")


def test_an_old_signed_bom_is_refused_as_its_version_is(versions):
    v1, key, store, bom, v1_bundle = versions
    r = run_cli("verify", str(v1), str(v1_bundle), "--key", f"{key}.pub", "--store", str(store))
    assert r.returncode == 1 and "rollback" in r.stderr
    r = _check(v1, key, bom, "--store", str(store))
    assert r.returncode == 1
    assert_one_line_error(r, "rollback", "version 1", "version 2")
    r = _check(v1, key, bom, "--no-store")  # no records, no rollback check: the claims hold
    assert r.returncode == 0, r.stderr


def test_an_unversioned_bom_of_another_root_is_refused_once_a_version_was_verified(versions, tmp_path):
    """A BOM made before BOMs recorded the version (or with it cut out) names v1's root: refused."""
    v1, key, store, bom, _ = versions
    statement = _payload(bom)
    tree = statement["predicate"]["components"][0]
    tree["properties"] = [p for p in tree["properties"] if p["name"] != "merkle:version"]
    r = _check(v1, key, _sign(statement, key, tmp_path / "unversioned.bundle"), "--store", str(store))
    assert r.returncode == 1
    assert_one_line_error(r, "rollback", "no version")


# Finding 1: claims --check never checked.  Finding 7: wrong JSON types.


def _file(tree: dict, name: str) -> dict:
    return next(f for f in tree["components"] if f["name"] == name)


def _extra_component(bom: dict) -> None:
    bom["components"].append({"type": "file", "name": "evil.bin", "bom-ref": "file:evil.bin"})


def _nested(bom: dict) -> None:
    _file(bom["components"][0], "config.json")["components"] = [{"type": "file", "name": "hidden.bin"}]


def _two_sha256(bom: dict) -> None:
    _file(bom["components"][0], "config.json")["hashes"].insert(0, {"alg": "SHA-256", "content": "22" * 32})


def _hash(alg: str, size: int):
    def mutate(bom: dict) -> None:
        _file(bom["components"][0], "config.json")["hashes"].append({"alg": alg, "content": "33" * size})

    return mutate


def _set(key: str, value):
    def mutate(bom: dict) -> None:
        bom["components"][0][key] = value

    return mutate


def _model_card(bom: dict) -> None:
    bom["components"][0]["modelCard"]["modelParameters"]["task"] = "text-generation"


def _property(bom: dict) -> None:
    bom["components"][0]["properties"].append({"name": "merkle:reviewed", "value": "true"})


def _metadata_component(bom: dict) -> None:
    bom["metadata"]["component"] = {"type": "application", "name": "evil"}


def _wrong_type(where: str):
    def mutate(bom: dict) -> None:
        tree = bom["components"][0]
        if where == "document-components":
            bom["components"] = 7
        elif where == "tree-components":
            tree["components"] = 7
        elif where == "tree-properties":
            tree["properties"] = 7
        else:
            _file(tree, "config.json")["hashes" if where == "file-hashes" else "properties"] = 7

    return mutate


FORGERIES = {
    "extra-top-level-component": (_extra_component, "components"),
    "nested-component-under-a-file": (_nested, "'components'"),
    "two-sha256-first-wrong": (_two_sha256, "two SHA-256"),
    "sha512-of-other-bytes": (_hash("SHA-512", 64), "cannot check"),
    "md5-of-other-bytes": (_hash("MD5", 16), "cannot check"),
    "forged-purl": (_set("purl", "pkg:huggingface/evil/other@" + "a" * 40), "purl"),
    "forged-version": (_set("version", "a" * 40), "purl"),
    "forged-name": (_set("name", "other-model"), "purl"),
    "licenses-not-the-readme": (_set("licenses", [{"license": {"id": "MIT"}}]), "licenses"),
    "model-card-not-the-readme": (_model_card, "modelCard"),
    "unchecked-property": (_property, "merkle:reviewed"),
    "metadata-component": (_metadata_component, "'component'"),
    "document-components-int": (_wrong_type("document-components"), "not a list"),
    "tree-components-int": (_wrong_type("tree-components"), "not a list"),
    "tree-properties-int": (_wrong_type("tree-properties"), "not a list"),
    "file-hashes-int": (_wrong_type("file-hashes"), "not a list"),
    "file-properties-int": (_wrong_type("file-properties"), "not a list"),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES), ids=lambda f: f)
def test_a_claim_check_does_not_read_is_refused(signed, signed_bom, tmp_path, forgery):
    """A trusted-signed BOM whose every claim the tree does not bear out, or that --check cannot check:
    refused (exit 1, one line) instead of "every claim holds"; nothing of it kept."""
    model, key, _ = signed
    mutate, needle = FORGERIES[forgery]
    statement = _payload(signed_bom)
    mutate(statement["predicate"])
    store = tmp_path / "store"
    r = _check(model, key, _sign(statement, key, tmp_path / "forged.bundle"), "--store", str(store))
    assert r.returncode == 1, r.stdout + r.stderr
    assert_one_line_error(r, needle)
    assert r.stdout == "" and _kinds(store) == []


def test_the_unforged_bom_passes_with_its_card_and_licenses_checked(signed, signed_bom):
    model, key, _ = signed
    tree = _payload(signed_bom)["predicate"]["components"][0]
    assert tree["licenses"] == [{"license": {"id": "Apache-2.0"}}] and "modelCard" in tree
    r = _check(model, key, signed_bom, "--no-store")
    assert r.returncode == 0, r.stderr


# Finding 4: BLAKE3 claims in the BOM of an OpenSSF statement were never checked.


def test_blake3_claims_in_an_openssf_bom_are_refused(signed, tmp_path):
    model, key, _ = signed
    oms, bom = tmp_path / "oms.sig", tmp_path / "bom.bundle"
    r = run_cli("build", str(model), "--sign", str(key), "--format", "oms", "-o", str(oms), "--no-store")
    assert r.returncode == 0, r.stderr
    r = run_cli("bom", str(model), str(oms), "--key", f"{key}.pub", "--sign", str(key), "-o", str(bom), "--no-store")
    assert r.returncode == 0, r.stderr
    assert _check(model, key, bom, "--no-store").returncode == 0
    statement = _payload(bom)
    for f in statement["predicate"]["components"][0]["components"]:
        f["hashes"].append({"alg": "BLAKE3", "content": "00" * 32})
    r = _check(model, key, _sign(statement, key, tmp_path / "b3.bundle"), "--no-store")
    assert r.returncode == 1
    assert_one_line_error(r, "BLAKE3", "SHA-256 only")


# Finding 5: --check dropped --follow-symlinks.


def test_check_reads_the_tree_as_the_bom_was_made_with_follow_symlinks(signed, tmp_path):
    model, key, _ = signed
    tree, bundle, bom = tmp_path / "linked", tmp_path / "b.json", tmp_path / "bom.bundle"
    shutil.copytree(model, tree)
    (tree / "shards").mkdir()
    (tree / "config.json").rename(tree / "shards" / "config.json")
    (tree / "config.json").symlink_to("shards/config.json")
    r = run_cli("build", str(tree), "--follow-symlinks", "--sign", str(key), "-o", str(bundle), "--no-store")
    assert r.returncode == 0, r.stderr
    r = run_cli("bom", str(tree), str(bundle), "--key", f"{key}.pub", "--follow-symlinks", "--sha256",
                "--sign", str(key), "-o", str(bom), "--no-store")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = _check(tree, key, bom, "--no-store", "--follow-symlinks")
    assert r.returncode == 0, r.stdout + r.stderr
    r = _check(tree, key, bom, "--no-store")  # without it, the link is refused, as verify refuses it
    assert r.returncode == 2 and "config.json" in r.stdout, r.stdout + r.stderr


# Finding 6: a lone surrogate in the card.  Finding 8: an empty tree signed.  Finding 9: --json on a failure.


def test_a_card_value_that_is_no_unicode_text_leaves_the_card_out(tmp_path):
    tree, out = tmp_path / "m", tmp_path / "bom.json"
    tree.mkdir()
    (tree / "a.bin").write_bytes(b"hello")
    (tree / "README.md").write_text('---\nlicense: mit\nlibrary_name: "\\ud83d"\n---\n# card\n')
    r = run_cli("bom", str(tree), "-o", str(out))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    (component,) = json.loads(out.read_text())["components"]
    assert "modelCard" not in component and "licenses" not in component
    assert "not valid Unicode text" in r.stderr


def test_an_empty_tree_is_not_signed(tmp_path, signed):
    _, key, _ = signed
    (tmp_path / "empty").mkdir()
    out = tmp_path / "e.bundle"
    r = run_cli("bom", str(tmp_path / "empty"), "--sign", str(key), "-o", str(out), "--no-store")
    assert r.returncode == 2 and not out.exists()
    assert_one_line_error(r, "no file to sign", "empty model is not signed")


def test_json_prints_a_tree_that_does_not_verify_as_json(signed, tmp_path):
    model, key, bundle = signed
    copy, out = tmp_path / "model", tmp_path / "bom.json"
    shutil.copytree(model, copy)
    (copy / "config.json").write_text("{}\n")
    r = run_cli("bom", str(copy), str(bundle), "--key", f"{key}.pub", "--json", "-o", str(out), "--no-store")
    assert r.returncode == 1 and not out.exists()
    doc = json.loads(r.stdout)
    assert doc["bom"] is None and "config.json" in r.stdout
    assert_one_line_error(r, "did not verify")
