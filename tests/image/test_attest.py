"""Image attestations (docs/images.md I11-I13): `merkle build oci:DIR[:TAG] --sign KEY -o BUNDLE --model PATH
MODEL_BUNDLE` signs a statement whose subject is the image's manifest digest, as skopeo reports it, naming the
model verified inside; `merkle verify oci:... BUNDLE --key PUB` checks every blob against it.  Attacks: another
image under the signed bundle, a layer changed in place, an image bundle handed to a tree's check, a model
bundle that does not match the image at signing, an older version of the image statement."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from support import hf_layout
from support import oci as o
from support.cli import assert_one_line_error, run_cli, statuses

from merkle.image.oci import machine_platform

MODEL = "/models/minilm"


@pytest.fixture(scope="module")
def signed(tmp_path_factory) -> tuple[Path, Path, Path, Path, Path]:
    """(model folder, model bundle, key, public key, image made by umoci)."""
    d = tmp_path_factory.mktemp("attest")
    shutil.copytree(hf_layout.model_dir(), d / "minilm")
    assert run_cli("keygen", "-o", str(d / "k")).returncode == 0
    r = run_cli("build", str(d / "minilm"), "--sign", str(d / "k"), "-o", str(d / "m.json"), "--no-store")
    assert r.returncode == 0, r.stderr
    return d / "minilm", d / "m.json", d / "k", d / "k.pub", o.umoci_image(d, d / "minilm", MODEL)


def statement_of(bundle: Path) -> dict:
    doc = json.loads(bundle.read_text())
    return json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))


def sign_image(target: str, key: Path, out: Path, *extra: str):
    return run_cli("build", target, "--sign", str(key), "-o", str(out), "--no-store", *extra)


def test_the_image_statement_names_the_manifest_digest_and_the_model(signed, tmp_path):
    model, model_bundle, key, pub, image = signed
    out = tmp_path / "img.json"
    r = sign_image(f"oci:{image}:v1", key, out, "--model", MODEL, str(model_bundle), "--model-key", str(pub))
    assert r.returncode == 0, r.stderr
    stmt = statement_of(out)
    skopeo = json.loads(o.run("skopeo", "inspect", f"oci:{image}:v1"))
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["subject"] == [{"name": "img:v1", "digest": {"sha256": skopeo["Digest"].split(":")[1]}}]
    (claim,) = stmt["predicate"]["models"]
    signed_model = statement_of(model_bundle)
    assert claim["path"] == MODEL and claim["name"] == signed_model["subject"][0]["name"] == "minilm"
    assert claim["digest"] == signed_model["subject"][0]["digest"]
    files = [p for p in model.rglob("*") if p.is_file()]
    assert (claim["files"], claim["size"]) == (len(files), sum(p.stat().st_size for p in files))

    r = run_cli("verify", f"oci:{image}:v1", str(out), "--key", str(pub), "--no-store", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["image"]["digest"] == skopeo["Digest"]
    assert doc["image"]["models"] == [claim]
    assert doc["image"]["layers"] == skopeo["Layers"]
    assert all(f["status"] == "ok" for f in doc["files"]) and len(doc["files"]) == 1 + len(skopeo["Layers"])


def test_an_image_signed_without_a_model(signed, tmp_path):
    *_, key, pub, image = signed
    out = tmp_path / "img.json"
    r = sign_image(f"oci:{image}", key, out, "--name", "registry.example/minilm:v1", "--version", "3")
    assert r.returncode == 0, r.stderr
    stmt = statement_of(out)
    assert stmt["subject"][0]["name"] == "registry.example/minilm:v1"
    assert stmt["predicate"]["models"] == [] and stmt["predicate"]["version"] == 3
    r = run_cli("verify", f"oci:{image}", str(out), "--key", str(pub), "--no-store")
    assert r.returncode == 0, r.stdout + r.stderr


def _other_image(model: Path, work: Path) -> Path:
    changed = work / "minilm"
    shutil.copytree(model, changed)
    text = (changed / "config.json").read_bytes()
    (changed / "config.json").write_bytes(text.replace(b"{", b"{ ", 1)[:-1])
    return o.umoci_image(work, changed, MODEL)


def test_another_image_under_the_signed_bundle_fails(signed, tmp_path):
    model, _, key, pub, image = signed
    out = tmp_path / "img.json"
    assert sign_image(f"oci:{image}:v1", key, out).returncode == 0
    other = _other_image(model, tmp_path / "other")
    r = run_cli("verify", f"oci:{other}:v1", str(out), "--key", str(pub), "--no-store")
    assert r.returncode == 1
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("* manifest")]
    assert "another image" in line


def test_a_layer_changed_in_place_fails_naming_it(signed, tmp_path):
    """The blob's bytes changed under its digest's name (as anyone who can write the layout can)."""
    _, _, key, pub, image = signed
    out = tmp_path / "img.json"
    assert sign_image(f"oci:{image}:v1", key, out).returncode == 0
    work = tmp_path / "img"
    shutil.copytree(image, work)
    layer = json.loads(o.run("skopeo", "inspect", f"oci:{image}:v1"))["Layers"][-1]
    blob = work / "blobs/sha256" / layer.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 1
    blob.write_bytes(bytes(data))
    r = run_cli("verify", f"oci:{work}:v1", str(out), "--key", str(pub), "--no-store")
    assert r.returncode == 1
    assert statuses(r.stdout)[f"layer 0 ({layer})"] == "*"


def test_a_model_that_does_not_match_the_image_is_never_signed(signed, tmp_path):
    model, model_bundle, key, pub, _ = signed
    other = _other_image(model, tmp_path / "other")
    out = tmp_path / "img.json"
    r = sign_image(f"oci:{other}:v1", key, out, "--model", MODEL, str(model_bundle), "--model-key", str(pub))
    assert r.returncode == 1
    assert statuses(r.stdout)["config.json"] == "*"
    assert not out.exists()
    r = sign_image(f"oci:{other}:v1", key, out, "--model", MODEL, str(model_bundle))
    assert r.returncode == 2
    assert_one_line_error(r, "--model-key")
    assert not out.exists()


def test_a_model_bundle_from_an_untrusted_key_is_refused(signed, tmp_path):
    _, model_bundle, key, _, image = signed
    assert run_cli("keygen", "-o", str(tmp_path / "other")).returncode == 0
    out = tmp_path / "img.json"
    r = sign_image(f"oci:{image}:v1", key, out, "--model", MODEL, str(model_bundle), "--model-key",
                   str(tmp_path / "other.pub"))  # fmt: skip
    assert r.returncode == 1
    assert not out.exists()


def test_an_image_bundle_is_not_a_tree_manifest(signed, tmp_path):
    model, model_bundle, key, pub, image = signed
    out = tmp_path / "img.json"
    assert sign_image(f"oci:{image}:v1", key, out).returncode == 0
    r = run_cli("verify", str(model), str(out), "--key", str(pub), "--no-store")
    assert r.returncode == 2
    assert_one_line_error(r, "container image", "oci:DIR")
    r = run_cli("verify", f"oci:{image}:v1", str(out), "--key", str(pub), "--no-store", "--model", MODEL)
    assert r.returncode == 2
    assert_one_line_error(r, "--model")
    r = run_cli("build", str(model), "--model", MODEL, str(model_bundle), "-o", str(tmp_path / "x.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "oci:DIR")


def test_an_older_image_statement_is_refused_after_a_newer_one(signed, tmp_path):
    *_, key, pub, image = signed
    store = tmp_path / "store"
    for version in (1, 2):
        r = run_cli("build", f"oci:{image}:v1", "--sign", str(key), "-o", str(tmp_path / f"v{version}.json"),
                    "--name", "minilm-image", "--version", str(version), "--store", str(store))  # fmt: skip
        assert r.returncode == 0, r.stderr
    verify = ("verify", f"oci:{image}:v1", "--key", str(pub), "--store", str(tmp_path / "verifier"))
    assert run_cli(*verify[:2], str(tmp_path / "v2.json"), *verify[2:]).returncode == 0
    r = run_cli(*verify[:2], str(tmp_path / "v1.json"), *verify[2:])
    assert r.returncode == 1
    assert "rollback" in r.stderr


def test_a_docker_archive_is_signed_by_its_image_id(signed, tmp_path):
    """skopeo writes the older docker form (no manifest blob): the subject is the config's digest, the id
    `docker load` gives the image."""
    _, model_bundle, key, pub, image = signed
    archive = tmp_path / "img.tar"
    o.run("skopeo", "copy", f"oci:{image}:v1", f"docker-archive:{archive}:minilm:v1")
    out = tmp_path / "d.json"
    r = sign_image(f"docker-archive:{archive}", key, out, "--model", MODEL, str(model_bundle), "--model-key", str(pub))
    assert r.returncode == 0, r.stderr
    config = json.loads(o.run("skopeo", "inspect", "--config", "--raw", f"docker-archive:{archive}"))
    raw = o.run("skopeo", "inspect", "--config", "--raw", f"docker-archive:{archive}").encode()
    assert config["rootfs"]["type"] == "layers"
    assert statement_of(out)["subject"][0]["digest"] == {"sha256": hashlib.sha256(raw).hexdigest()}
    r = run_cli("verify", f"docker-archive:{archive}", str(out), "--key", str(pub), "--no-store")
    assert r.returncode == 0, r.stdout + r.stderr


def test_usage_errors_of_image_build(signed, tmp_path):
    _, model_bundle, key, pub, image = signed
    r = run_cli("build", f"oci:{image}:v1", "-o", str(tmp_path / "x.json"))
    assert r.returncode == 2
    assert_one_line_error(r, "--sign")
    r = sign_image(f"oci:{image}:v1", key, tmp_path / "x.json", "--format", "oms")
    assert r.returncode == 2
    assert_one_line_error(r, "--format oms")
    r = sign_image(f"oci:{image}:v1", key, tmp_path / "x.json", "--model", MODEL, str(model_bundle),
                   "--model", MODEL + "/", str(model_bundle), "--model-key", str(pub))  # fmt: skip
    assert r.returncode == 2
    assert_one_line_error(r, "twice")
    assert not (tmp_path / "x.json").exists()


def test_the_library_entry_points_refuse_an_image_bundle(signed, tmp_path):
    import merkle
    from merkle.errors import UsageError

    model, _, key, pub, image = signed
    out = tmp_path / "img.json"
    assert sign_image(f"oci:{image}:v1", key, out).returncode == 0
    with pytest.raises(UsageError, match="container image"):
        merkle.verify_signed(model, [out], keys=[pub], attestations=False)
    with pytest.raises(UsageError, match="container image"):
        merkle.open(model / "config.json", out, name="config.json", keys=[pub], attestations=False)


def _two_platforms(root: Path, layers: dict[str, bytes], nested: bool) -> dict[str, str]:
    """One image for two platforms (each one uncompressed layer), listed by a nested index or in index.json
    itself; {platform: manifest digest}."""
    root.mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entries, digests = [], {}
    for plat, layer in layers.items():
        arch = plat.split("/")[1]
        config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers",
                             "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()  # fmt: skip
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **o.blob(root, config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **o.blob(root, layer)}],
        }).encode()  # fmt: skip
        d = o.blob(root, manifest)
        digests[plat] = d["digest"]
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **d,
                        "platform": {"os": "linux", "architecture": arch}})  # fmt: skip
    tag = {"annotations": {"org.opencontainers.image.ref.name": "v1"}}
    if nested:
        index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": entries}).encode()  # fmt: skip
        top = [{"mediaType": "application/vnd.oci.image.index.v1+json", **o.blob(root, index), **tag}]
    else:
        top = [{**e, **tag} for e in entries]
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": top}))
    return digests


def test_an_image_of_two_platforms_is_signed_per_platform(signed, tmp_path):
    """Each platform's manifest is signed on its own (its name says which); checked on a machine of another
    platform, the bundle fails unless --platform names the one it signs: a runtime here would run this machine's
    manifest, which nobody signed."""
    model, model_bundle, key, pub, _ = signed
    here = "/".join(machine_platform())
    other = "linux/s390x"
    files = sorted(p for p in model.rglob("*") if p.is_file())
    good = o.tar_of([(MODEL[1:] + "/" + p.relative_to(model).as_posix(), p.read_bytes(), {}) for p in files])
    bad = o.tar_of([(MODEL[1:] + "/" + p.relative_to(model).as_posix(),
                     p.read_bytes() + (b" " if p.name == "config.json" else b""), {}) for p in files])  # fmt: skip
    root = tmp_path / "multi"
    digests = _two_platforms(root, {here: bad, other: good}, nested=True)
    out = tmp_path / "other.json"
    r = sign_image(f"oci:{root}:v1", key, out, "--platform", other, "--model", MODEL, str(model_bundle),
                   "--model-key", str(pub))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert statement_of(out)["subject"][0] == {"name": f"multi:v1 ({other})",
                                               "digest": {"sha256": digests[other].split(":")[1]}}  # fmt: skip
    check = ("verify", f"oci:{root}:v1", str(out), "--key", str(pub), "--no-store")
    r = run_cli(*check)
    assert r.returncode == 1
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("* manifest")]
    assert digests[here] in line and "--platform" in line
    r = run_cli(*check, "--platform", other, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["image"]["digest"] == digests[other]
    r = sign_image(f"oci:{root}:v1", key, tmp_path / "here.json", "--model", MODEL, str(model_bundle),
                   "--model-key", str(pub))  # fmt: skip
    assert r.returncode == 1 and statuses(r.stdout)["config.json"] == "*"
    assert not (tmp_path / "here.json").exists()
    model_check = ("verify", f"oci:{root}:v1", str(model_bundle), "--key", str(pub), "--no-store", "--model", MODEL)
    assert run_cli(*model_check, "--platform", other).returncode == 0
    assert run_cli(*model_check).returncode == 1
    r = run_cli(*model_check, "--platform", "linux")
    assert r.returncode == 2
    assert_one_line_error(r, "OS/ARCH")


def test_a_tag_named_twice_in_index_json_is_refused(signed, tmp_path):
    """Runtimes differ on it (skopeo takes the first, umoci refuses): so does merkle, whatever the platforms."""
    model, _, key, _, _ = signed
    root = tmp_path / "multi"
    layer = o.tar_of([(MODEL[1:] + "/a", b"a", {})])
    _two_platforms(root, {"/".join(machine_platform()): layer, "linux/s390x": layer}, nested=False)
    r = sign_image(f"oci:{root}:v1", key, tmp_path / "x.json")
    assert r.returncode == 2
    assert_one_line_error(r, "2 images")
    assert not (tmp_path / "x.json").exists()


def test_an_image_and_its_model_under_one_name_are_versioned_apart(signed, tmp_path):
    """A publisher's model 'minilm' at version 3 and its first image 'minilm' at version 1: both verify on one
    machine, in either order (the review found the image refused as a rollback of the model)."""
    model, _, key, pub, image = signed
    m3, i1 = tmp_path / "m3.json", tmp_path / "i1.json"
    r = run_cli("build", str(model), "--sign", str(key), "-o", str(m3), "--name", "minilm", "--version", "3",
                "--no-store")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = sign_image(f"oci:{image}:v1", key, i1, "--name", "minilm", "--version", "1")
    assert r.returncode == 0, r.stderr
    store = ("--store", str(tmp_path / "verifier"))
    assert run_cli("verify", str(model), str(m3), "--key", str(pub), *store).returncode == 0
    r = run_cli("verify", f"oci:{image}:v1", str(i1), "--key", str(pub), *store)
    assert r.returncode == 0, r.stdout + r.stderr
    assert run_cli("verify", str(model), str(m3), "--key", str(pub), *store).returncode == 0


def test_a_refused_image_bundle_is_not_kept(signed, tmp_path):
    """Handed to a tree's check, an image bundle is refused before the store keeps it or records its version."""
    model, _, key, pub, image = signed
    out = tmp_path / "i9.json"
    assert sign_image(f"oci:{image}:v1", key, out, "--name", "minilm", "--version", "9").returncode == 0
    store = tmp_path / "verifier"
    r = run_cli("verify", str(model), str(out), "--key", str(pub), "--store", str(store))
    assert r.returncode == 2
    r = run_cli("store", "list", "--store", str(store), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


BAD_MODELS = {
    "trailing-slash": {"path": "/models/minilm/"},
    "doubled-slash": {"path": "//models/minilm"},
    "dot": {"path": "/models/./minilm"},
    "dotdot": {"path": "/models/../etc"},
    "relative": {"path": "models/minilm"},
    "newline-in-name": {"name": "minilm\n= forged.bin"},
    "escape-in-path": {"path": "/models/\x1b[2Jminilm"},
    "sha256-digest": {"digest_key": "sha256"},
    "bool-files": {"files": True},
    "negative-size": {"size": -1},
}


@pytest.mark.parametrize("change", BAD_MODELS.values(), ids=BAD_MODELS.keys())
def test_a_signed_statement_with_a_malformed_model_is_refused(signed, tmp_path, change):
    """Signed by the trusted key and still refused: what build never writes is never read."""
    from merkle.signing import statements
    from merkle.signing.keys import load_private_key

    *_, key, pub, image = signed
    digest = json.loads(o.run("skopeo", "inspect", f"oci:{image}:v1"))["Digest"]
    fields = {"path": MODEL, "name": "minilm", "digest_key": "merkle-blake3", "root": "ab" * 32, "files": 1,
              "size": 1} | change  # fmt: skip
    stmt = statements.image_statement("img", digest, [statements.ImageModel(**fields)])
    out = tmp_path / "bad.json"
    out.write_bytes(statements.sign_statement(stmt, load_private_key(str(key))).to_json())
    r = run_cli("verify", f"oci:{image}:v1", str(out), "--key", str(pub), "--no-store")
    assert r.returncode == 1, r.stdout + r.stderr
    assert_one_line_error(r, "model")
    assert r.stdout == ""
