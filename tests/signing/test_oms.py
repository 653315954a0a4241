"""OpenSSF model-signing interop (issue 3, item 4): the real `model_signing`
CLI (model-signing 1.1.1) against the real `merkle` program, both ways,
including a tampered file, extra and missing files and a wrong key."""

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli, run_model_signing, statuses

OMS_PREDICATE = "https://model_signing/signature/v1.0"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name, kind in (("k1", "ecdsa-p256"), ("k2", "ecdsa-p256"), ("p384", "ecdsa-p384"), ("ed", "ed25519")):
        r = run_cli("keygen", "-o", str(d / name), "--type", kind)
        assert r.returncode == 0, r.stderr
        out[name] = d / name
    return out


@pytest.fixture
def model(model_dir):
    """conftest's model (subdirectory, empty file, non-ASCII name) plus git
    metadata, which both tools leave out."""
    (model_dir / ".git").mkdir()
    (model_dir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (model_dir / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    return model_dir


def pub(key: Path) -> str:
    return str(key) + ".pub"


def ms(*args: str) -> subprocess.CompletedProcess[str]:
    return run_model_signing(*args)


def ms_verify(model: Path, bundle: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return ms("verify", "key", str(model), "--signature", str(bundle), "--public_key", pub(key))


def ms_sign(model: Path, bundle: Path, key: Path) -> subprocess.CompletedProcess[str]:
    r = ms("sign", "key", str(model), "--private_key", str(key), "--signature", str(bundle))
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def merkle_oms(cli, model: Path, key: Path, out: Path) -> Path:
    r = cli("build", str(model), "--sign", str(key), "--format", "oms", "-o", str(out))
    assert r.returncode == 0, r.stderr
    return out


def statement(bundle: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(bundle.read_bytes())["dsseEnvelope"]["payload"]))


def files_of(model: Path) -> dict[str, bytes]:
    """Every regular file outside git metadata, by relative POSIX path."""
    out = {}
    for p in sorted(model.rglob("*")):
        rel = p.relative_to(model).as_posix()
        if p.is_file() and rel.split("/")[0] not in (".git", ".gitattributes"):
            out[rel] = p.read_bytes()
    return out


# -- merkle signs, model_signing verifies --------------------------------------------------


@pytest.mark.parametrize("key", ["k1", "p384"])
def test_model_signing_verifies_merkles_bundle(cli, tmp_path, model, keys, key):
    b = merkle_oms(cli, model, keys[key], tmp_path / "b.json")
    r = ms_verify(model, b, keys[key])
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("verify", str(model), str(b), "--key", pub(keys[key]))
    assert r.returncode == 0, r.stderr
    assert set(statuses(r.stdout)) == set(files_of(model))


def test_merkles_oms_statement_matches_the_spec(cli, tmp_path, model, keys):
    """Resources are whole-file SHA-256 of every file (the empty one and the
    subdirectory too, not git metadata); the subject digest is SHA-256 over the
    raw digests in listed order."""
    b = merkle_oms(cli, model, keys["k1"], tmp_path / "b.json")
    stmt = statement(b)
    assert stmt["predicateType"] == OMS_PREDICATE
    resources = stmt["predicate"]["resources"]
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in files_of(model).items()}
    assert {r["name"]: r["digest"] for r in resources} == expected
    assert "empty.txt" in expected and "1_Pooling/config.json" in expected
    assert all(r["algorithm"] == "sha256" for r in resources)
    joined = b"".join(bytes.fromhex(r["digest"]) for r in resources)
    assert stmt["subject"] == [{"name": "model", "digest": {"sha256": hashlib.sha256(joined).hexdigest()}}]
    assert stmt["predicate"]["serialization"]["method"] == "files"
    assert stmt["predicate"]["serialization"]["hash_type"] == "sha256"


def test_tampered_file_is_rejected_by_both_tools(cli, tmp_path, model, keys):
    b = merkle_oms(cli, model, keys["k1"], tmp_path / "b.json")
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[5000] ^= 0x80
    weights.write_bytes(bytes(data))
    r = ms_verify(model, b, keys["k1"])
    assert r.returncode != 0, r.stdout + r.stderr
    r = cli("verify", str(model), str(b), "--key", pub(keys["k1"]))
    assert r.returncode == 1, r.stderr
    assert statuses(r.stdout)["model.safetensors"] == "*"


def test_wrong_key_is_rejected_by_both_tools(cli, tmp_path, model, keys):
    b = merkle_oms(cli, model, keys["k1"], tmp_path / "b.json")
    r = ms_verify(model, b, keys["k2"])
    assert r.returncode != 0, r.stdout + r.stderr
    r = cli("verify", str(model), str(b), "--key", pub(keys["k2"]))
    assert r.returncode == 1
    assert_one_line_error(r, str(b), "signature")


def test_merkle_bundle_inside_the_model_is_ignored_by_both_tools(cli, model, keys):
    b = merkle_oms(cli, model, keys["k1"], model / "model.sig.json")
    assert "model.sig.json" in statement(b)["predicate"]["serialization"]["ignore_paths"]
    assert "model.sig.json" not in {r["name"] for r in statement(b)["predicate"]["resources"]}
    r = ms_verify(model, b, keys["k1"])
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("verify", str(model), str(b), "--key", pub(keys["k1"]))
    assert r.returncode == 0, r.stderr
    assert "model.sig.json" not in statuses(r.stdout)


def test_ed25519_key_is_refused_for_oms(cli, tmp_path, model, keys):
    """model-signing verifies ECDSA keys only: merkle must not write a bundle
    model_signing cannot verify."""
    b = tmp_path / "b.json"
    r = cli("build", str(model), "--sign", str(keys["ed"]), "--format", "oms", "-o", str(b))
    assert r.returncode == 2
    assert_one_line_error(r, str(keys["ed"]), "ECDSA")
    assert not b.exists()


def test_oms_format_needs_a_key(cli, tmp_path, model):
    r = cli("build", str(model), "--format", "oms", "-o", str(tmp_path / "b.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "--sign")


# -- model_signing signs, merkle verifies ------------------------------------------------------


@pytest.fixture
def ms_bundle(tmp_path, model, keys):
    b = tmp_path / "s.json"
    ms_sign(model, b, keys["k1"])
    assert statement(b)["predicateType"] == OMS_PREDICATE
    return b


def test_merkle_verifies_model_signings_bundle(cli, model, keys, ms_bundle):
    r = cli("verify", str(model), str(ms_bundle), "--key", pub(keys["k1"]))
    assert r.returncode == 0, r.stderr
    assert statuses(r.stdout) == {p: "=" for p in files_of(model)}
    assert "model-signing" in r.stderr
    r = cli("verify", str(model), str(ms_bundle), "--key", pub(keys["k1"]), "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["signature"]["format"] == "oms"


def test_merkle_rejects_a_tampered_file_in_a_model_signing_model(cli, model, keys, ms_bundle):
    (model / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": false}\n')
    r = cli("verify", str(model), str(ms_bundle), "--key", pub(keys["k1"]))
    assert r.returncode == 1, r.stderr
    assert statuses(r.stdout)["1_Pooling/config.json"] == "*"
    assert r.returncode == 1 and ms_verify(model, ms_bundle, keys["k1"]).returncode != 0


def test_merkle_rejects_an_extra_file(cli, model, keys, ms_bundle):
    (model / "1_Pooling" / "extra.bin").write_bytes(b"x")
    r = cli("verify", str(model), str(ms_bundle), "--key", pub(keys["k1"]))
    assert r.returncode == 1, r.stderr
    assert statuses(r.stdout)["1_Pooling/extra.bin"] == "+"
    assert ms_verify(model, ms_bundle, keys["k1"]).returncode != 0  # model_signing agrees


def test_merkle_rejects_a_missing_file(cli, model, keys, ms_bundle):
    (model / "empty.txt").unlink()
    r = cli("verify", str(model), str(ms_bundle), "--key", pub(keys["k1"]))
    assert r.returncode == 1, r.stderr
    assert statuses(r.stdout)["empty.txt"] == "-"
    assert ms_verify(model, ms_bundle, keys["k1"]).returncode != 0


def test_merkle_rejects_model_signings_bundle_with_a_wrong_key(cli, model, keys, ms_bundle):
    r = cli("verify", str(model), str(ms_bundle), "--key", pub(keys["k2"]))
    assert r.returncode == 1
    assert_one_line_error(r, str(ms_bundle), "signature")
    assert r.stdout == ""


def test_model_signing_bundle_inside_the_model_is_ignored_by_both_tools(cli, model, keys):
    b = model / "model.sig"
    ms_sign(model, b, keys["k1"])
    r = cli("verify", str(model), str(b), "--key", pub(keys["k1"]))
    assert r.returncode == 0, r.stderr
    assert "model.sig" not in statuses(r.stdout)
    assert ms_verify(model, b, keys["k1"]).returncode == 0


def test_model_signing_bundle_of_another_model_is_rejected(cli, tmp_path, model, keys, ms_bundle):
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"other weights")
    r = cli("verify", str(other), str(ms_bundle), "--key", pub(keys["k1"]))
    assert r.returncode == 1, r.stderr
    got = statuses(r.stdout)
    assert got["model.safetensors"] == "*" and got["empty.txt"] == "-"


# -- issue 18: exclusions, empty models, the verifier's own ignores ----------------------------


def test_exclude_is_recorded_as_ignore_paths_and_both_tools_verify(cli, tmp_path, model, keys):
    """--exclude with --format oms: each file or folder a pattern left out is
    recorded in ignore_paths by its path relative to the model root (OMS
    records paths, not patterns), so model_signing leaves out the same."""
    (model / "logs").mkdir()
    (model / "logs" / "run.txt").write_text("step 1\n")
    (model / "1_Pooling" / "scratch.tmp").write_text("x")
    (model / "top.tmp").write_text("y")
    b = tmp_path / "b.json"
    r = cli("build", str(model), "--sign", str(keys["k1"]), "--format", "oms", "-o", str(b))
    assert r.returncode == 0, r.stderr
    assert {"logs/run.txt", "top.tmp"} <= {x["name"] for x in statement(b)["predicate"]["resources"]}
    r = cli(
        "build", str(model), "--sign", str(keys["k1"]), "--format", "oms", "-o", str(b),
        "--exclude", "logs", "--exclude", "*.tmp",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    predicate = statement(b)["predicate"]
    names = {x["name"] for x in predicate["resources"]}
    assert not {"logs/run.txt", "top.tmp", "1_Pooling/scratch.tmp"} & names
    assert names == set(files_of(model)) - {"logs/run.txt", "top.tmp", "1_Pooling/scratch.tmp"}
    assert {"logs", "top.tmp", "1_Pooling/scratch.tmp"} <= set(predicate["serialization"]["ignore_paths"])
    r = ms_verify(model, b, keys["k1"])
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("verify", str(model), str(b), "--key", pub(keys["k1"]))
    assert r.returncode == 0, r.stderr
    # What was left out stays out for both: changing it changes nothing; a signed file still counts.
    (model / "logs" / "run.txt").write_text("step 2\n")
    assert ms_verify(model, b, keys["k1"]).returncode == 0
    assert cli("verify", str(model), str(b), "--key", pub(keys["k1"])).returncode == 0
    (model / "empty.txt").write_bytes(b"!")
    assert ms_verify(model, b, keys["k1"]).returncode != 0
    assert cli("verify", str(model), str(b), "--key", pub(keys["k1"])).returncode == 1


def test_an_empty_model_is_refused_by_both_tools(cli, tmp_path, keys):
    empty = tmp_path / "empty"
    empty.mkdir()
    # model_signing 1.1.1 signs it (resources: []), against OMS 6.1; merkle refuses that bundle, and with it
    # --allow-extra, which model_signing's --ignore_unsigned_files would pass on any folder (docs/signing.md O8).
    ms_empty = tmp_path / "ms.json"
    r = ms("sign", "key", str(empty), "--private_key", str(keys["k1"]), "--signature", str(ms_empty))
    assert r.returncode == 0 and statement(ms_empty)["predicate"]["resources"] == []
    r = cli("verify", str(empty), str(ms_empty), "--key", pub(keys["k1"]))
    assert r.returncode == 1
    assert_one_line_error(r, str(ms_empty), "no file")
    r = cli("verify", str(tmp_path), str(ms_empty), "--key", pub(keys["k1"]), "--allow-extra")
    assert r.returncode == 1 and r.stdout == ""
    for fmt in ("oms", "merkle"):
        b = tmp_path / f"{fmt}.json"
        r = cli("build", str(empty), "--sign", str(keys["k1"]), "--format", fmt, "-o", str(b))
        assert r.returncode == 2, r.stderr
        assert_one_line_error(r, "no file to sign")
        assert not b.exists()
    # Everything excluded is as empty, and says why.
    (empty / "only.bin").write_bytes(b"1")
    r = cli("build", str(empty), "--sign", str(keys["k1"]), "--format", "oms", "-o", str(b), "--exclude", "*.bin")
    assert r.returncode == 2 and "excluded" in r.stderr and not b.exists()
    # An unsigned manifest of an empty folder is still written: its root is defined (D2).
    (tmp_path / "none").mkdir()
    r = cli("build", str(tmp_path / "none"), "-o", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    r = cli("sign", str(tmp_path / "m.json"), "--key", str(keys["k1"]), "-o", str(tmp_path / "s.json"))
    assert r.returncode == 2 and "no file to sign" in r.stderr and not (tmp_path / "s.json").exists()


def test_verifier_ignores_hide_unsigned_files_only(cli, tmp_path, model, keys, ms_bundle):
    """--exclude and --allow-extra at verify time act on an OMS bundle as
    model_signing's --ignore_paths and --ignore_unsigned_files do: they hide
    files the bundle does not sign; a signed file is checked whatever they say."""
    (model / "ignore-me").write_text("not signed\n")
    key = pub(keys["k1"])
    r = cli("verify", str(model), str(ms_bundle), "--key", key)
    assert r.returncode == 1 and statuses(r.stdout)["ignore-me"] == "+"
    r = cli("verify", str(model), str(ms_bundle), "--key", key, "--exclude", "ignore-me")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ignore-me" not in statuses(r.stdout)
    r = cli("verify", str(model), str(ms_bundle), "--key", key, "--allow-extra")
    assert r.returncode == 0, r.stdout + r.stderr
    # An exclusion naming a signed file does not hide a change to it.
    (model / "empty.txt").write_bytes(b"changed")
    r = cli("verify", str(model), str(ms_bundle), "--key", key, "--exclude", "empty.txt", "--allow-extra")
    assert r.returncode == 1 and statuses(r.stdout)["empty.txt"] == "*"


def test_an_excluded_name_oms_cannot_record_is_refused(cli, tmp_path, keys):
    """A name no canonical path can spell cannot go into ignore_paths: one
    line, exit 2, no bundle (not a traceback, not a bundle model_signing
    would see an extra file beside)."""
    m = tmp_path / "m"
    m.mkdir()
    (m / "a.bin").write_bytes(b"a")
    (m / "bad\x01name.tmp").write_bytes(b"b")
    b = tmp_path / "b.json"
    r = cli("build", str(m), "--sign", str(keys["k1"]), "--format", "oms", "-o", str(b), "--exclude", "*.tmp")
    assert r.returncode == 2
    assert_one_line_error(r, "ignore_paths", "--exclude")
    assert not b.exists()


def test_a_single_file_model_both_ways(cli, tmp_path, keys):
    """A model that is one file: its resource is '.', as model_signing 1.1.1
    writes and requires; each tool verifies the other's bundle, and a changed
    byte fails both."""
    w = tmp_path / "weights.bin"
    w.write_bytes(b"weights")
    mine, theirs = tmp_path / "mine.sig", tmp_path / "theirs.sig"
    r = cli("build", str(w), "--sign", str(keys["k1"]), "--format", "oms", "-o", str(mine))
    assert r.returncode == 0, r.stderr
    st = statement(mine)
    assert [x["name"] for x in st["predicate"]["resources"]] == ["."]
    assert st["subject"][0]["name"] == "weights.bin"
    assert st["subject"][0]["digest"]["sha256"] == hashlib.sha256(hashlib.sha256(b"weights").digest()).hexdigest()
    ms_sign(w, theirs, keys["k1"])
    for b in (mine, theirs):
        assert ms_verify(w, b, keys["k1"]).returncode == 0
        r = cli("verify", str(w), str(b), "--key", pub(keys["k1"]))
        assert r.returncode == 0, r.stderr
    w.write_bytes(b"weightz")
    for b in (mine, theirs):
        assert ms_verify(w, b, keys["k1"]).returncode != 0
        r = cli("verify", str(w), str(b), "--key", pub(keys["k1"]))
        assert r.returncode == 1 and statuses(r.stdout)["."] == "*"
    # A folder's bundle does not verify one file, nor a file's bundle a folder.
    d = tmp_path / "d"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"weightz")
    assert cli("verify", str(d), str(mine), "--key", pub(keys["k1"])).returncode == 1


def test_a_single_file_model_refuses_exclude_and_an_output_over_itself(cli, tmp_path, keys):
    w = tmp_path / "model.bin"
    w.write_bytes(b"precious")
    r = cli(
        "build", str(w), "--sign", str(keys["k1"]), "--format", "oms", "-o", str(tmp_path / "b"), "--exclude", "*.bin"
    )
    assert r.returncode == 2 and not (tmp_path / "b").exists()
    assert_one_line_error(r, "--exclude", "one file")
    r = cli("build", str(w), "--sign", str(keys["k1"]), "--format", "oms", "-o", str(w))
    assert r.returncode == 2
    assert_one_line_error(r, "replace the model")
    assert w.read_bytes() == b"precious"
