"""Manifest v2 (docs/hf.md, M6-M8): an origin and per-file Hub identities,
signed with the manifest, never changing v1 documents or the dataset root."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import merkle
from merkle.errors import FormatError
from merkle.format.manifest import FileEntry, Manifest, Summary
from merkle.format.origin import Origin

REV = "1234567890abcdef1234567890abcdef12345678"


def entries(hub: bool) -> list[FileEntry]:
    out = []
    for name, data in (("config.json", b"{}\n"), ("model.safetensors", b"\0" * 5000)):
        root = merkle.hash_stream(__import__("io").BytesIO(data))
        ident = ("sha256", hashlib.sha256(data).hexdigest()) if name.endswith("safetensors") else None
        out.append(FileEntry(name, len(data), root, ident if hub else None))
    return out


def test_v1_stays_v1_and_v2_round_trips_byte_for_byte():
    v1 = Manifest.create(entries(hub=False))
    assert json.loads(v1.to_json())["format"] == "merkle-manifest-v1"
    v2 = Manifest.create(entries(hub=True), origin=Origin(REV, "org/name"))
    doc = json.loads(v2.to_json())
    assert doc["format"] == "merkle-manifest-v2"
    assert list(doc) == ["format", "algorithm", "chunk_size", "exclude", "origin", "root", "files"]
    assert doc["origin"] == {"type": "huggingface", "repo": "org/name", "repo_type": "model", "revision": REV}
    assert doc["files"][1]["hub"] == {"sha256": hashlib.sha256(b"\0" * 5000).hexdigest()}
    assert "hub" not in doc["files"][0]
    again = Manifest.from_json(v2.to_json())
    assert again == v2 and again.to_json() == v2.to_json()
    # The dataset root covers paths, sizes and contents only (M8): identical for v1 and v2.
    assert v1.root == v2.root


def test_hub_identities_without_origin_are_v2_with_a_null_origin():
    m = Manifest.create(entries(hub=True))
    doc = json.loads(m.to_json())
    assert doc["format"] == "merkle-manifest-v2" and doc["origin"] is None
    assert Manifest.from_json(m.to_json()) == m


def test_summary_carries_the_origin():
    m = Manifest.create(entries(hub=True), origin=Origin(REV, None, "dataset"))
    summary = Summary.from_doc(json.loads(json.dumps(m.summary.to_dict())))
    assert summary == m.summary and summary.origin == Origin(REV, None, "dataset")
    assert Summary.from_doc(Manifest.create(entries(hub=False)).summary.to_dict()).origin is None


def test_without_hub_drops_identities_and_stale_lookups():
    m = Manifest.create(entries(hub=True), origin=Origin(REV, "org/name"))
    assert m.entry("model.safetensors").hub is not None  # fills the lookup cache
    bare = m.without_hub()
    assert bare.entry("model.safetensors").hub is None and bare.root == m.root and bare.origin == m.origin


@pytest.mark.parametrize(
    "origin",
    [
        {"revision": "main"},
        {"revision": REV.upper()},
        {"repo": "a/b/c"},
        {"repo": "../x"},
        {"repo": "a--b"},
        {"repo_type": "models"},
        {"type": "git"},
    ],
)
def test_bad_origins_are_refused(origin):
    fields = {"revision": REV, "repo": "org/name", "repo_type": "model", "type": "huggingface", **origin}
    with pytest.raises(FormatError):
        Origin(**fields)


def test_compact_bundle_vouches_for_origin_not_hub(cli, tmp_path):
    from huggingface_hub.utils.sha import git_hash

    # A minimal cache snapshot: one file, its blob named by its git blob id.
    folder = tmp_path / "models--org--tiny"
    data = b"hello\n"
    blob = folder / "blobs" / git_hash(data)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    snap = folder / "snapshots" / REV
    snap.mkdir(parents=True)
    (snap / "a.txt").symlink_to(f"../../blobs/{git_hash(data)}")
    assert cli("keygen", "-o", str(tmp_path / "k")).returncode == 0
    bundle = tmp_path / "b.json"
    r = cli("build", str(folder), "--sign", str(tmp_path / "k"), "--compact", "-o", str(bundle))
    assert r.returncode == 0, r.stderr
    payload = json.loads(__import__("base64").b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"]))
    summary = payload["predicate"]["summary"]
    assert summary["format"] == "merkle-manifest-v2" and summary["origin"]["revision"] == REV
    assert summary["origin"]["repo"] == "org/tiny"
    beside = json.loads((tmp_path / "b.json.manifest").read_text())
    assert beside["files"][0]["hub"] == {"gitBlob": git_hash(data)}
    from merkle.signing.documents import load_document
    from merkle.signing.keys import load_public_key
    from merkle.signing.trust import TrustPolicy
    from merkle.verifying.signed import open_signed

    loaded = load_document(str(bundle), bundle=True)
    policy = TrustPolicy(keys=(load_public_key(str(tmp_path / "k.pub")),))
    verified = open_signed([loaded], policy, None)
    assert verified.manifest is not None and verified.manifest.origin == Origin(REV, "org/tiny")
    assert verified.manifest.files[0].hub is None  # the summary does not vouch for it
    assert cli("verify", str(snap), str(bundle), "--key", str(tmp_path / "k.pub")).returncode == 0


@given(
    st.text(min_size=1, max_size=60),
    st.integers(0, 2**63 - 1),
    st.binary(min_size=32, max_size=32),
    st.sampled_from([None, ("sha256", "ab" * 32), ("gitBlob", "cd" * 20)]),
)
@settings(max_examples=300, deadline=None)
def test_fast_entry_encoding_is_the_canonical_json(path, size, root, hub):
    """M3: the per-entry fast path writes exactly what json.dumps of the entry's dict writes."""
    from merkle.format import strictjson
    from merkle.format.manifest import _entry_json

    entry = FileEntry(path, size, root, hub)
    assert _entry_json(entry) == strictjson.dumps(entry.to_dict())
