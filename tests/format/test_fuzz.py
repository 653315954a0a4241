"""Fuzzing every parser of untrusted input (issue 14): manifests (v1, v2 with
Hub identities, v2 with a zarr layout), leaf sidecars, bundles and the
statements inside them, file proofs, range proofs, the attestation store's
index, Hugging Face tree listings and download metadata, safetensors
headers, sums files.

The seeds are made by the real code (a small tree built, signed with a
generated key, proved, stored); hypothesis mutates them: bit flips, byte
changes, truncation, insertion, deletion, and JSON-level changes (a value
swapped for another type, a key dropped, added or duplicated, NaN,
Infinity, floats, huge integers, lone surrogates, deep nesting).

Properties:
1. only merkle's own errors (MerkleError and its subclasses) come out:
   any other exception is a crash, and a bug in the parser;
2. inputs are bounded (a few KiB, nesting past the recursion limit), so
   nothing hangs;
3. what is accepted after a mutation of authenticated input is the same
   verified content: a bundle opens to the same payload and manifest, a
   sidecar only as the very bytes, a proof only for the same entry.

Deterministic (derandomize) and sized to run in well under a minute.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import merkle
from merkle.errors import MerkleError
from merkle.format import strictjson
from merkle.format.fileproof import FileProof
from merkle.format.fileproof import prove as prove_file
from merkle.format.leaves import LeafLayers
from merkle.format.manifest import FileEntry, Manifest
from merkle.format.origin import Origin
from merkle.format.tensors import read_header, tensor_info
from merkle.hashing.files import format_sum, parse_sums
from merkle.signing import oms, statements
from merkle.signing.attestations import Store
from merkle.signing.envelope import Bundle, BundleFile, Statement
from merkle.signing.keys import generate
from merkle.signing.trust import TrustPolicy, decide
from merkle.tree.ranges import RangeProof
from merkle.verifying.ranges import FileAuth

FUZZ = settings(
    # MERKLE_FUZZ_EXAMPLES=5000 MERKLE_FUZZ_RANDOM=1 for a longer, new search.
    max_examples=int(os.environ.get("MERKLE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=not os.environ.get("MERKLE_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
CS = 1024  # chunk size of the seed tree: files of several chunks stay small


# -- mutations -------------------------------------------------------------------------------------------------------


def byte_mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """One flipped bit or one replaced byte: the smallest change."""
    n = len(data)
    flip = st.tuples(st.integers(0, n - 1), st.integers(0, 7)).map(
        lambda t: data[: t[0]] + bytes([data[t[0]] ^ (1 << t[1])]) + data[t[0] + 1 :]
    )
    put = st.tuples(st.integers(0, n - 1), st.integers(0, 255)).map(
        lambda t: data[: t[0]] + bytes([t[1]]) + data[t[0] + 1 :]
    )
    return st.one_of(flip, put).filter(lambda d: d != data)


def raw_mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """Byte-level damage of any size: one byte, truncation, insertion, deletion."""
    n = len(data)
    truncate = st.integers(0, n - 1).map(lambda i: data[:i])
    insert = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=16)).map(
        lambda t: data[: t[0]] + t[1] + data[t[0] :]
    )
    delete = st.tuples(st.integers(0, n - 1), st.integers(1, 64)).map(lambda t: data[: t[0]] + data[t[0] + t[1] :])
    return st.one_of(byte_mutations(data), truncate, insert, delete)


class Raw:
    """JSON text emitted as is: NaN, huge numbers, deep nesting, bad escapes."""

    def __init__(self, text: str) -> None:
        self.text = text


class Dup:
    """An object written with one of its keys twice (stdlib json keeps the last)."""

    def __init__(self, obj: dict[str, Any], key: str, value: Any) -> None:
        self.obj, self.key, self.value = obj, key, value


def emit(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Dup):
        pairs = [*value.obj.items(), (value.key, value.value)]
        return "{" + ",".join(f"{json.dumps(k)}:{emit(v)}" for k, v in pairs) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{emit(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(emit(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


BOUNDARY_INTS = st.sampled_from(
    [
        0,
        -1,
        1,
        2,
        1023,
        1024,
        2**31,
        2**32,
        2**63 - 1,
        2**63,
        2**64 - 1,
        2**64,
        10**19,
        10**20 - 1,
        -(2**63),
        -(10**20 - 1),
    ]
)
HOSTILE_STRINGS = st.sampled_from(
    [
        "",
        "0" * 64,
        "f" * 64,
        "F" * 64,
        "0" * 40,
        "../x",
        "/abs",
        "a//b",
        "a\\b",
        "\x00",
        "\n= x",
        "\u202e",
        "\u200b",
        "\ud800",
        "2027-01-31T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "blake3",
        "sha256",
        "md5",
        "merkle-manifest-v1",
        "merkle-manifest-v2",
        "model",
        "dataset",
        "huggingface",
        "sha1",
        "files",
    ]
)
HOSTILE_VALUES = st.one_of(
    st.sampled_from([None, True, False]),
    BOUNDARY_INTS,
    HOSTILE_STRINGS,
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "1.0",
            "-0",
            "1E2",
            "9" * 20,
            "-" + "9" * 20,
            "9" * 21,
            '"\\ud800"',
            '"\\udfff\\ud800"',
            '"\\u0000"',
            "deep-list",
            "deep-object",
            "nested-list",
        ]
    ).map(lambda t: Raw(_DEEP.get(t, t))),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from([[], {}, [0], [""], [None], {"": None}, [[]], [{}], {"a": 1}]),
)
_DEEP = {
    "deep-list": "[" * 5000 + "]" * 5000,
    "deep-object": '{"a":' * 3000 + "1" + "}" * 3000,
    "nested-list": "[" * 50 + "]" * 50,
}


def node_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON document (the root too)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += node_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += node_paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], fn: Callable[[Any], Any]) -> Any:
    if not path:
        return fn(doc)
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {k: (_replace(v, rest, fn) if k == head else v) for k, v in doc.items()}
    return [(_replace(v, rest, fn) if i == head else v) for i, v in enumerate(doc)]


def _drop(doc: Any, path: tuple[Any, ...]) -> Any:
    parent, last = path[:-1], path[-1]

    def without(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: v for k, v in node.items() if k != last}
        return [v for i, v in enumerate(node) if i != last]

    return _replace(doc, parent, without)


def json_mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """A JSON document changed at one position."""
    doc = json.loads(data)
    paths = node_paths(doc)
    inner = [p for p in paths if p]

    def replaced(args: tuple[tuple[Any, ...], Any]) -> bytes:
        path, value = args
        return emit(_replace(doc, path, lambda _: value)).encode("utf-8", "surrogatepass")

    def dropped(path: tuple[Any, ...]) -> bytes:
        return emit(_drop(doc, path)).encode()

    def added(args: tuple[tuple[Any, ...], str, Any]) -> bytes:
        path, key, value = args

        def add(node: Any) -> Any:
            if isinstance(node, dict):
                return {**node, key: value}
            if isinstance(node, list):
                return [*node, value]
            return node

        return emit(_replace(doc, path, add)).encode("utf-8", "surrogatepass")

    def duplicated(args: tuple[tuple[Any, ...], Any]) -> bytes:
        path, value = args

        def dup(node: Any) -> Any:
            if isinstance(node, dict) and node:
                key = next(iter(node))
                return Dup(node, key, node[key] if value is None else value)
            return node

        return emit(_replace(doc, path, dup)).encode("utf-8", "surrogatepass")

    def swapped(args: tuple[tuple[Any, ...], tuple[Any, ...]]) -> bytes:
        a, b = args
        if a[: len(b)] == b or b[: len(a)] == a:  # one holds the other
            return data
        va, vb = _get(doc, a), _get(doc, b)
        return emit(_replace(_replace(doc, a, lambda _: vb), b, lambda _: va)).encode()

    where = st.sampled_from(paths)
    # Type-aware changes first: a count at a boundary, a string made hostile.
    ints = [p for p in paths if type(_get(doc, p)) is int]
    strings = [p for p in paths if isinstance(_get(doc, p), str)]
    near_int = (
        st.sampled_from(ints).flatmap(
            lambda p: st.tuples(
                st.just(p),
                st.one_of(
                    BOUNDARY_INTS,
                    st.integers(-2, 2).map(lambda d, p=p: _get(doc, p) + d),
                    st.sampled_from([True, False, None, 1.0]),
                    st.just(str(_get(doc, p))),
                ),
            )
        )
        if ints
        else st.nothing()
    )
    near_str = (
        st.sampled_from(strings).flatmap(
            lambda p: st.tuples(st.just(p), st.one_of(HOSTILE_STRINGS, st.sampled_from(_string_variants(_get(doc, p)))))
        )
        if strings
        else st.nothing()
    )
    return st.one_of(
        near_int.map(replaced),
        near_int.map(replaced),
        near_str.map(replaced),
        near_str.map(replaced),
        st.tuples(where, HOSTILE_VALUES).map(replaced),
        st.sampled_from(inner).map(dropped) if inner else st.nothing(),
        st.tuples(
            where, st.sampled_from(["x", "", "format", "root", "path", "version", "__proto__"]), HOSTILE_VALUES
        ).map(added),
        st.tuples(where, st.one_of(st.none(), HOSTILE_VALUES)).map(duplicated),
        st.tuples(st.sampled_from(inner), st.sampled_from(inner)).map(swapped) if inner else st.nothing(),
    )


def _string_variants(text: str) -> list[str]:
    return [
        text.upper(),
        text[:-1],
        text + "0",
        text + "\u200b",
        "../" + text,
        text + "/",
        "/" + text,
        text.replace("a", "\u0430"),
        text * 2,
        text[::-1],
        text + "\n= forged",
        "x" + text[1:],
    ]


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    json_level = json_mutations(data)
    return st.one_of(raw_mutations(data), json_level, json_level)


def merkle_errors_only(fn: Callable[[], Any]) -> Any:
    """fn's result, or None if it raised one of merkle's errors; any other
    exception propagates and fails the test."""
    try:
        return fn()
    except MerkleError as e:
        str(e)  # formatting the message must not fail either
        return None


# -- seeds, made by the real code ------------------------------------------------------------------------------------


class Seeds:
    pass


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    s = Seeds()
    base = tmp_path_factory.mktemp("fuzz")
    tree = base / "model"
    (tree / "sub").mkdir(parents=True)
    (tree / "config.json").write_bytes(b'{"hidden_size": 8}\n')
    (tree / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 14)  # 3.5 chunks
    (tree / "sub" / "more.bin").write_bytes(os.urandom(2 * CS + 1))
    (tree / "empty").write_bytes(b"")
    (tree / "vocabulário.txt").write_text("a\nb\n", encoding="utf-8")
    s.tree = tree
    s.manifest = merkle.build(tree, chunk_size=CS, exclude=[".git", "*.tmp"])
    s.manifest_bytes = s.manifest.to_json()
    # v2: a Hugging Face origin and per-file Hub identities (M6-M8); a zarr layout (M9, Z1-Z2)
    hub = [
        FileEntry(
            f.path,
            f.size,
            f.root,
            ("sha256", hashlib.sha256(f.path.encode()).hexdigest())
            if i % 2
            else ("gitBlob", hashlib.sha1(f.path.encode()).hexdigest()),
        )
        for i, f in enumerate(s.manifest.files)
    ]
    s.manifests = {
        "v1": s.manifest,
        "v2-hub": Manifest.create(
            hub, chunk_size=CS, origin=Origin("0123456789abcdef0123456789abcdef01234567", "org/model")
        ),
    }
    zarr = _zarr_store(base / "store.zarr")
    if zarr is not None:
        s.manifests["v2-zarr"] = merkle.build(zarr, chunk_size=CS)
    assert s.manifest.layers is not None
    s.sidecar = s.manifest.layers.to_bytes(s.manifest)

    s.key = generate("ed25519")
    s.policy = TrustPolicy(keys=(s.key.public_key(),))
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3650)
    full = statements.sign(s.manifest, s.key, name="fuzz", version=3, expires=expires)
    compact = statements.sign(s.manifest, s.key, name="fuzz", version=3, compact=True)
    stmt = oms.build(tree, name="model")
    s.oms_bundle = statements.sign_statement(stmt.to_statement(), s.key)
    s.bundles = {"full": full.to_json(), "compact": compact.to_json(), "oms": s.oms_bundle.to_json()}
    for kind in ("v2-hub", "v2-zarr"):
        if kind in s.manifests:
            s.bundles[kind] = statements.sign(s.manifests[kind], s.key, name="fuzz", version=1).to_json()
            s.bundles[kind + "-compact"] = statements.sign(
                s.manifests[kind], s.key, name="fuzz", compact=True
            ).to_json()

    s.proof = prove_file(s.manifest, "sub/weights.bin")
    s.proof_bytes = s.proof.to_json()
    auth = FileAuth.of(s.manifest, "sub/weights.bin")
    s.auth = auth
    s.range = auth.proof(1, 3)

    store_dir = base / "store"
    store = Store(str(store_dir))
    for name in ("full", "compact"):
        raw = s.bundles[name]
        store.add(raw, decide([(Bundle.from_json(raw), name)], s.policy))
    s.store_dir = store_dir
    s.index_bytes = (store_dir / "index.json").read_bytes()
    s.verified = decide([(full, "full")], s.policy)

    root = merkle.hash_file(tree / "config.json")
    s.sums = (format_sum(root, str(tree / "config.json")) + "\n" + format_sum(root, "odd\\name\nhere") + "\n").encode()
    return s


def _zarr_store(root: Path) -> Path | None:
    """A small zarr v3 store written by zarr itself (None without zarr)."""
    try:
        import numpy as np
        import zarr
    except ImportError:
        return None
    group = zarr.open_group(str(root), mode="w")
    array = group.create_array("data", shape=(6, 4), chunks=(3, 2), dtype="int32")
    array[...] = np.arange(24, dtype="int32").reshape(6, 4)
    group.create_group("aux").create_array("labels", shape=(5,), chunks=(2,), dtype="int64")[...] = np.arange(5)
    return root


# -- manifests -------------------------------------------------------------------------------------------------------


def _core(m: Manifest) -> tuple[Any, ...]:
    """What a dataset root commits to (exclusions and origin are not: M5)."""
    return m.algorithm, m.chunk_size, m.root, tuple((f.path, f.size, f.root) for f in m.files)


def check_manifest(seed: Manifest, data: bytes) -> None:
    got = merkle_errors_only(lambda: Manifest.from_json(data, "fuzzed.json"))
    if got is not None:
        assert _core(got) == _core(seed)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["v1", "v2-hub", "v2-zarr"]))
def test_manifest_parser(seeds: Seeds, data: st.DataObject, kind: str) -> None:
    seed = seeds.manifests.get(kind, seeds.manifest)
    check_manifest(seed, data.draw(mutations(seed.to_json())))


@FUZZ
@given(data=st.data())
def test_leaf_sidecar_is_accepted_only_whole(seeds: Seeds, data: st.DataObject) -> None:
    mutated = data.draw(raw_mutations(seeds.sidecar))
    got = merkle_errors_only(lambda: LeafLayers.from_bytes(mutated, seeds.manifest, "fuzzed.leaves"))
    assert got is None, "a changed sidecar authenticated"


# -- bundles and statements ------------------------------------------------------------------------------------------


def open_bundle(raw: bytes, policy: TrustPolicy) -> statements.Verified | None:
    def run() -> statements.Verified:
        return decide([(Bundle.from_json(raw, "fuzzed.bundle"), "fuzzed.bundle")], policy)

    return merkle_errors_only(run)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["full", "compact", "oms"]))
def test_bundle_parser_and_signature(seeds: Seeds, data: st.DataObject, kind: str) -> None:
    seed = seeds.bundles[kind]
    original = open_bundle(seed, seeds.policy)
    assert original is not None
    verified = open_bundle(data.draw(mutations(seed)), seeds.policy)
    if verified is not None:  # only the unsigned parts changed (a keyid, a hint)
        assert verified.payload == original.payload and verified.manifest == original.manifest
        assert verified.summary == original.summary and verified.version == original.version


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["full", "compact", "oms"]))
def test_one_changed_byte_of_a_bundle_is_never_the_same_content(seeds: Seeds, data: st.DataObject, kind: str) -> None:
    seed = seeds.bundles[kind]
    doc = json.loads(seed)
    mutated = data.draw(byte_mutations(seed))
    verified = open_bundle(mutated, seeds.policy)
    if verified is None:
        return
    # Accepted: the envelope's payload and signature are the signed ones.
    after = json.loads(mutated)
    assert after["dsseEnvelope"]["payload"] == doc["dsseEnvelope"]["payload"]
    assert verified.payload == Bundle.from_json(seed).payload


@FUZZ
@given(
    data=st.data(),
    kind=st.sampled_from(["full", "compact", "oms", "v2-hub", "v2-hub-compact", "v2-zarr", "v2-zarr-compact"]),
)
def test_signed_statement_parser(seeds: Seeds, data: st.DataObject, kind: str) -> None:
    """The statement is parsed only after its signature verified, so fuzz it
    signed by the trusted key: the parser behind the signature (statement,
    predicate, manifest or summary, OMS resources, times) must hold too."""
    payload = Bundle.from_json(seeds.bundles.get(kind, seeds.bundles["full"])).payload
    mutated = data.draw(mutations(payload))
    bundle = statements.sign_payload(mutated, seeds.key)
    verified = merkle_errors_only(lambda: decide([(bundle, "fuzzed.bundle")], seeds.policy))
    if verified is not None and verified.manifest is not None:
        assert verified.summary is not None and verified.summary.root == verified.manifest.root


@FUZZ
@given(data=st.data())
def test_manifest_beside_a_compact_bundle(seeds: Seeds, data: st.DataObject) -> None:
    """BUNDLE.manifest is unauthenticated: used only when it is exactly what
    the signed summary describes (C1), whatever else it says."""
    from merkle.verifying.signed import open_signed

    where = Path(str(seeds.store_dir) + "-compact")
    where.mkdir(exist_ok=True)
    raw = seeds.bundles["compact"]
    (where / "b.json").write_bytes(raw)
    (where / "b.json.manifest").write_bytes(data.draw(mutations(seeds.manifest_bytes)))
    bundle = Bundle.from_json(raw)
    verified = merkle_errors_only(
        lambda: open_signed([BundleFile(bundle, raw, str(where / "b.json"))], seeds.policy, None)
    )
    if verified is not None and verified.manifest is not None:
        got = verified.manifest
        assert _core(got) == _core(seeds.manifest) and got.exclude == seeds.manifest.exclude
        assert got.origin == seeds.manifest.origin


@FUZZ
@given(data=st.data())
def test_statement_parser_unsigned(seeds: Seeds, data: st.DataObject) -> None:
    payload = Bundle.from_json(seeds.bundles["full"]).payload
    merkle_errors_only(lambda: Statement.from_payload(data.draw(mutations(payload)), "fuzzed"))


# -- proofs ----------------------------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_file_proof_parser(seeds: Seeds, data: st.DataObject) -> None:
    mutated = data.draw(mutations(seeds.proof_bytes))

    def check() -> FileProof:
        proof = FileProof.from_json(mutated, "fuzzed.proof")
        proof.verify(seeds.manifest.summary)
        return proof

    proof = merkle_errors_only(check)
    if proof is not None:
        assert (proof.entry, proof.index, proof.tree_size) == (
            seeds.proof.entry,
            seeds.proof.index,
            seeds.proof.tree_size,
        )


def _range_verifies(seeds: Seeds, proof: RangeProof) -> RangeProof:
    leaves = seeds.auth.leaves[proof.start : proof.end]
    proof.verify(seeds.auth.hasher, list(leaves), seeds.auth.entry.root)
    return proof


@FUZZ
@given(data=st.data())
def test_range_proof_parsers(seeds: Seeds, data: st.DataObject) -> None:
    binary = data.draw(raw_mutations(seeds.range.to_bytes()))
    got = merkle_errors_only(lambda: _range_verifies(seeds, RangeProof.from_bytes(binary)))
    if got is not None:
        assert got == seeds.range
    doc = data.draw(mutations(json.dumps(seeds.range.to_dict()).encode()))

    def from_json() -> RangeProof:
        parsed = strictjson.loads(doc, "fuzzed", 1 << 20)
        proof = RangeProof.from_dict(parsed)
        proof.to_bytes()  # whatever parses can be written back
        return _range_verifies(seeds, proof)

    got = merkle_errors_only(from_json)
    if got is not None:
        assert got == seeds.range


# -- local state: the attestation store ------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_store_index_is_checked_strictly(seeds: Seeds, data: st.DataObject) -> None:
    """A malformed index is a FormatError naming it, never a TypeError or
    KeyError, whichever of the store's operations meets it first."""
    mutated = data.draw(mutations(seeds.index_bytes))
    work = Path(str(seeds.store_dir) + "-fuzz")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(seeds.store_dir, work)
    (work / "index.json").write_bytes(mutated)
    store = Store(str(work))
    merkle_errors_only(store.entries)
    merkle_errors_only(lambda: store.find("fuzz"))
    merkle_errors_only(
        lambda: store.decide(
            [seeds.bundles["full"]],
            lambda history: decide([(Bundle.from_json(seeds.bundles["full"]), "fuzzed.bundle")], seeds.policy, history),
        )
    )
    merkle_errors_only(lambda: store.add(seeds.bundles["full"], seeds.verified))


# -- Hugging Face bookkeeping ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_local_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, bytes, bytes]:
    """A local_dir as huggingface_hub writes it (its own writers for the
    download metadata and the tree listing), with one LFS and one plain file."""
    pytest.importorskip("huggingface_hub")
    from huggingface_hub._local_folder import get_local_download_paths, write_download_metadata
    from huggingface_hub._tree_cache import TreeCacheEntry, tree_cache_folder_for_local_dir, write_tree_cache

    from merkle.format.hub import git_blob_id, lfs_pointer

    root = tmp_path_factory.mktemp("hf") / "local"
    commit = hashlib.sha1(b"fuzz commit").hexdigest()
    files = {"config.json": b'{"a": 1}\n', "model.safetensors": os.urandom(3000)}
    entries = {}
    for path, content in files.items():
        paths = get_local_download_paths(root, path)
        Path(paths.file_path).write_bytes(content)
        if path.endswith(".safetensors"):
            sha = hashlib.sha256(content).hexdigest()
            etag = sha
            entries[path] = TreeCacheEntry(
                size=len(content),
                blob_id=git_blob_id(lfs_pointer(sha, len(content))),
                lfs_sha256=sha,
                lfs_size=len(content),
                xet_hash=None,
            )
        else:
            etag = git_blob_id(content)
            entries[path] = TreeCacheEntry(
                size=len(content), blob_id=etag, lfs_sha256=None, lfs_size=None, xet_hash=None
            )
        write_download_metadata(root, path, commit, etag)
    folder = Path(tree_cache_folder_for_local_dir(str(root)))
    write_tree_cache(str(folder), commit, entries)
    tree_path = folder / "trees" / f"{commit}.json"
    metadata_path = Path(get_local_download_paths(root, "model.safetensors").metadata_path)
    assert merkle.hf.verify_checkout(root).ok  # the seed is a good checkout
    return root, tree_path, metadata_path, tree_path.read_bytes(), metadata_path.read_bytes()


@FUZZ
@given(data=st.data())
def test_hf_tree_listing_and_download_metadata(hf_local_dir, data: st.DataObject) -> None:
    from merkle.hf.layout import parse_tree, read_tree

    root, tree_path, metadata_path, tree_seed, metadata_seed = hf_local_dir
    listing = data.draw(mutations(tree_seed))
    metadata = data.draw(st.one_of(st.just(metadata_seed), raw_mutations(metadata_seed)))
    try:
        tree_path.write_bytes(listing)
        metadata_path.write_bytes(metadata)
        merkle_errors_only(lambda: read_tree(str(tree_path)))
        merkle_errors_only(lambda: parse_tree(json.loads(listing)) if _is_json(listing) else None)
        report = merkle_errors_only(lambda: merkle.hf.verify_checkout(root))
        if report is not None:
            assert all(o.line().isprintable() for o in report.outcomes)
    finally:
        tree_path.write_bytes(tree_seed)
        metadata_path.write_bytes(metadata_seed)


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except (ValueError, RecursionError):
        return False
    return True


# -- safetensors headers and sums files ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def safetensors_bytes() -> bytes:
    np = pytest.importorskip("numpy")
    from safetensors.numpy import save

    return save(
        {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(4, dtype=np.int64)}, metadata={"format": "np"}
    )


@FUZZ
@given(data=st.data())
def test_safetensors_header_parser(safetensors_bytes: bytes, data: st.DataObject) -> None:
    (n,) = struct.unpack("<Q", safetensors_bytes[:8])
    header = safetensors_bytes[8 : 8 + n]
    mutated_header = data.draw(st.one_of(raw_mutations(header), json_mutations(header)))
    blob = data.draw(
        st.one_of(
            st.just(len(mutated_header).to_bytes(8, "little") + mutated_header + safetensors_bytes[8 + n :]),
            raw_mutations(safetensors_bytes[:64]),
        )
    )

    def parse() -> None:
        f = io.BytesIO(blob)
        length, parsed = read_header(f, len(blob), "fuzzed.safetensors")
        for name in [*parsed, "missing"]:
            merkle_errors_only(lambda name=name: tensor_info(length, parsed, name, len(blob), "fuzzed.safetensors"))

    merkle_errors_only(parse)


@FUZZ
@given(data=st.data())
def test_sums_parser(seeds: Seeds, data: st.DataObject) -> None:
    mutated = data.draw(raw_mutations(seeds.sums))
    merkle_errors_only(lambda: parse_sums(mutated.decode("utf-8", "replace"), "fuzzed.sums"))


# -- regressions found by fuzzing, run as a user would ---------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from support.cli import run_cli

    base = tmp_path_factory.mktemp("signed")
    tree = base / "t"
    tree.mkdir()
    (tree / "a").write_bytes(b"a")
    key = base / "k"
    assert run_cli("keygen", "-o", str(key)).returncode == 0
    r = run_cli("build", str(tree), "--sign", str(key), "-o", str(base / "b.json"), "--store", str(base / "store"))
    assert r.returncode == 0, r.stderr
    return tree, base / "b.json", key


def _index(bundles: object = None, versions: object = None) -> dict[str, object]:
    return {
        "format": 2,
        "bundles": {} if bundles is None else bundles,
        "versions": {} if versions is None else versions,
    }


@pytest.mark.parametrize(
    "index",
    [
        _index({"0" * 64: None}),
        _index({"0" * 64: {"name": "d", "root": "0" * 64, "version": 1, "kind": "merkle"}}),
        _index({"../../escape": {"name": "d", "root": "0" * 64, "version": 1, "kind": "merkle", "signers": []}}),
        _index(versions={"key:x": {"d": None}}),
        _index(versions={"key:x": {"d": {"version": "2", "root": "0" * 64}}}),
        _index(versions={"key:x": {"d": {"version": 2, "root": "../x"}}}),
        _index(versions=[]),
        _index([]),
        {"format": 1, "bundles": {}, "versions": {}},
        {
            "bundles": {"../../escape": {"name": "d", "root": "0" * 64, "version": 1, "kind": "merkle", "signers": []}},
            "highest": {},
        },  # format 1: its bundles are still checked
    ],
)
def test_malformed_store_index_is_one_line_naming_it(cli, signed_tree, private_store, index) -> None:
    """Issue 14 item 7 (parse only): `internal error: TypeError` before (or a
    bundle path outside the store); now every command that reads the index
    says which file is malformed."""
    from support.cli import assert_one_line_error

    tree, bundle, key = signed_tree
    private_store.mkdir()
    (private_store / "index.json").write_text(json.dumps(index))
    commands = [("store", "list"), ("verify", str(tree), str(bundle), "--key", f"{key}.pub")]
    for args in commands:
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert_one_line_error(r, str(private_store / "index.json"), "malformed attestation index")
