"""The Python API: typed, immutable results, both forms of every check, and
the engine's parallel paths agreeing with a one-thread spec reading."""

import dataclasses
import hashlib
import io
import os

import blake3
import pytest

import merkle
from merkle.cli.progress import Bar
from merkle.hashing import engine


def spec_mth(h, leaves):
    """RFC 6962 section 2.1, literally (the test's own reading of the spec)."""
    if not leaves:
        return h(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return h(b"\x01" + spec_mth(h, leaves[:k]) + spec_mth(h, leaves[k:])).digest()


def spec_file_root(h, data, chunk):
    return spec_mth(h, [h(b"\x00" + data[i : i + chunk]).digest() for i in range(0, len(data), chunk)])


@pytest.mark.parametrize("algorithm,h", [("blake3", blake3.blake3), ("sha256", hashlib.sha256)])
def test_large_file_split_across_workers_matches_the_spec(tmp_path, algorithm, h):
    # Bigger than one work unit, so several threads hash parts of one file.
    size = 2 * engine.UNIT_BYTES + 3 * 65536 + 11
    data = blake3.blake3(b"large").digest(length=size)
    path = tmp_path / "large.bin"
    path.write_bytes(data)
    want = spec_file_root(h, data, 65536)
    for jobs in (1, 2, 3):
        assert merkle.hash_file(path, algorithm, 65536) == want
        (d,) = merkle.hash_paths([str(path)], algorithm, 65536, jobs=jobs)
        assert d.root == want and len(d.leaves) == 32 * -(-size // 65536)


def test_chunk_larger_than_read_buffer(tmp_path):
    # Chunks bigger than the engine's read buffer are fed in pieces.
    size = engine.MAX_BUFFER * 2 + 5
    data = blake3.blake3(b"wide").digest(length=size)
    (tmp_path / "w.bin").write_bytes(data)
    chunk = engine.MAX_BUFFER * 2
    assert merkle.hash_file(tmp_path / "w.bin", "sha256", chunk) == spec_file_root(hashlib.sha256, data, chunk)


def test_hash_stream_matches_hash_file(tmp_path):
    data = os.urandom(10_000)
    (tmp_path / "f").write_bytes(data)
    assert merkle.hash_stream(io.BytesIO(data), chunk_size=1024) == merkle.hash_file(tmp_path / "f", chunk_size=1024)


def test_build_is_deterministic_across_job_counts(model_dir):
    one = merkle.build(model_dir, chunk_size=4096, jobs=1)
    two = merkle.build(model_dir, chunk_size=4096, jobs=2)
    assert one == two and one.to_json() == two.to_json()
    assert one.layers is not None and two.layers is not None
    assert one.layers.leaves == two.layers.leaves


def test_manifest_is_immutable_and_validated(model_dir):
    m = merkle.build(model_dir)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.root = b"\x00" * 32  # type: ignore[misc]
    with pytest.raises(merkle.FormatError, match="does not match"):
        dataclasses.replace(m, root=b"\x00" * 32)
    with pytest.raises(merkle.FormatError, match="sorted"):
        dataclasses.replace(m, files=tuple(reversed(m.files)))


def test_manifest_lookup(model_dir):
    m = merkle.build(model_dir)
    assert m.entry("config.json").size == (model_dir / "config.json").stat().st_size
    assert m.entry("nope") is None
    assert [m.index(f.path) for f in m.files] == list(range(len(m.files)))
    with pytest.raises(KeyError):
        m.index("nope")


def test_report_both_forms(model_dir):
    m = merkle.build(model_dir)
    good = merkle.verify(model_dir, m)
    assert good and good.exit_code == 0
    good.raise_for_failure()
    (model_dir / "config.json").write_text("changed")
    bad = merkle.verify(model_dir, m)
    assert not bad and bad.exit_code == 1
    assert [(o.path, o.status) for o in bad.failures] == [("config.json", merkle.Status.MISMATCH)]
    with pytest.raises(merkle.IntegrityError, match="config.json"):
        bad.raise_for_failure()


def test_report_only_unreadable_is_source_error(model_dir):
    m = merkle.build(model_dir)
    (model_dir / "config.json").unlink()
    os.mkfifo(model_dir / "config.json")
    report = merkle.verify(model_dir, m)
    assert report.exit_code == 2
    with pytest.raises(merkle.SourceError):
        report.raise_for_failure()


def test_progress_bar_draws_and_erases():
    out = io.StringIO()
    bar = Bar("hashing", out)
    bar.started -= 10
    bar.total_bytes, bar.bytes, bar.total_files, bar.files = 2000, 1000, 4, 2
    bar.tick()
    drawn = out.getvalue()
    assert "50.0%" in drawn and "2/4 files" in drawn
    bar.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_unknown_algorithm_is_unsupported(tmp_path):
    with pytest.raises(merkle.UnsupportedError):
        merkle.build(tmp_path, algorithm="md5")  # type: ignore[arg-type]
    with pytest.raises(merkle.FormatError, match="power of two"):
        merkle.build(tmp_path, chunk_size=1000)


def test_hashing_commands_do_not_load_cryptography():
    """Start-up is part of every `merkle hash`: signing code loads on demand."""
    import subprocess
    import sys

    code = "import sys, merkle.cli; print('cryptography' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_key_types_match_the_signing_module():
    from merkle.cli.options import KEY_TYPES
    from merkle.signing.keys import KEY_TYPES as SIGNING_KEY_TYPES

    assert KEY_TYPES == SIGNING_KEY_TYPES


def test_every_public_name_resolves_to_the_module_that_defines_it():
    """merkle.__all__ is the supported API: each name imports (lazily or not) and is the object its
    defining module holds, so the facade never drifts from the code it fronts."""
    import importlib

    import merkle as api

    assert len(set(api.__all__)) == len(api.__all__)
    for name in api.__all__:
        value = getattr(api, name)
        module = importlib.import_module(value.__module__) if hasattr(value, "__module__") else None
        if module is not None and name in vars(module):
            assert vars(module)[name] is value, name
    for name in ("sign", "verify_signed", "prove", "verify_with_proof", "audit_full", "BuildOptions"):
        assert name in api.__all__
