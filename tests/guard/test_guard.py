"""merkle.guard (issue 21, verify before load): the real all-MiniLM-L6-v2 files signed by the `merkle` program
with a real key, loaded by the real `safetensors.numpy.load_file` / `safe_open` through the guard; then the attacks
of someone who can write in the model folder between check and use, or who hands over another valid bundle."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as stn
from safetensors import safe_open
from support.cli import run_cli
from support.damage import flip
from support.hf_layout import model_dir

import merkle
from merkle.errors import ChunkError, IntegrityError, PathError, PolicyError, SourceError, UsageError

MODES = ["sealed", "pinned"]
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The real model signed as "minilm" version 2 (and version 1, and another model signed by the same key)."""
    base = tmp_path_factory.mktemp("release")
    key = base / "release"
    assert run_cli("keygen", "-o", str(key)).returncode == 0
    tree = base / "minilm"
    shutil.copytree(model_dir(), tree)
    bundles = {}
    for label, version in (("v2", "2"), ("v1", "1")):
        out = base / f"minilm.{label}.bundle.json"
        r = run_cli("build", str(tree), "--sign", str(key), "-o", str(out), "--name", "minilm", "--version", version,
                    "--no-store")  # fmt: skip
        assert r.returncode == 0, r.stderr
        bundles[label] = out
    other = base / "other"
    other.mkdir()
    stn.save_file({"w": np.arange(12, dtype=np.float32).reshape(3, 4)}, str(other / WEIGHTS))
    (other / "config.json").write_text('{"model_type": "other"}\n')
    out = base / "other.bundle.json"
    r = run_cli("build", str(other), "--sign", str(key), "-o", str(out), "--name", "other", "--version", "7",
                "--no-store")  # fmt: skip
    assert r.returncode == 0, r.stderr
    bundles["other"] = out
    return {"tree": tree, "other_tree": other, "pub": str(key) + ".pub", **bundles}


@pytest.fixture
def work(release, tmp_path):
    """A private copy of the signed tree (tests damage it)."""
    tree = tmp_path / "model"
    shutil.copytree(release["tree"], tree)
    return tree


def guard(release, tree, bundle="v2", **kw):
    kw.setdefault("name", "minilm")
    return merkle.guard(tree, release[bundle], keys=[release["pub"]], **kw)


def original_tensors(release):
    return stn.load_file(str(release["tree"] / WEIGHTS))


def assert_same_tensors(got, want):
    assert sorted(got) == sorted(want) and len(want) > 100
    for name, array in want.items():
        assert got[name].dtype == array.dtype and np.array_equal(got[name], array), name


def directory_loader(folder: str) -> dict[str, object]:
    """What a loader that takes a directory does (as sentence-transformers reads this model): read the module list,
    the configurations and the weights by their names inside the folder."""
    modules = json.loads(Path(folder, "modules.json").read_text())
    return {
        "modules": modules,
        "config": json.loads(Path(folder, "config.json").read_text()),
        "pooling": json.loads(Path(folder, modules[1]["path"], "config.json").read_text()),
        "weights": stn.load_file(os.path.join(folder, WEIGHTS)),
    }


# -- the loader gets the verified bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_loaders_get_the_signed_tensors(release, work, mode):
    want = original_tensors(release)
    with guard(release, work, mode=mode) as g:
        assert g.report.ok and g.verified.name == "minilm" and g.verified.version == 2 and g.mode == mode
        assert_same_tensors(stn.load_file(g.path(WEIGHTS)), want)
        with safe_open(g.path(WEIGHTS), framework="np") as f:
            assert np.array_equal(f.get_tensor("embeddings.word_embeddings.weight"),
                                  want["embeddings.word_embeddings.weight"])  # fmt: skip
        with g.safetensors(WEIGHTS) as f:
            assert set(f.keys()) == set(want)
        assert_same_tensors(stn.load(g.open(WEIGHTS).read()), want)
        assert g.open("vocab.txt").read() == (release["tree"] / "vocab.txt").read_bytes()


def test_sealed_tensors_are_read_only_views_of_the_sealed_copy(release, work):
    want = original_tensors(release)
    with guard(release, work, only=[WEIGHTS]) as g:
        got = g.tensors(WEIGHTS)
    assert_same_tensors(got, want)  # still readable after the guard closed: the arrays keep the sealed memory
    assert all(a.shape == want[k].shape and not a.flags.writeable for k, a in got.items())
    with guard(release, work, mode="pinned", only=[WEIGHTS]) as g, pytest.raises(UsageError, match="sealed"):
        g.tensors(WEIGHTS)


@pytest.mark.parametrize("mode", MODES)
def test_a_directory_loader_sees_exactly_the_signed_files(release, work, mode):
    (work / "planted.py").write_text("import os\n")
    with guard(release, work, mode=mode, allow_extra=True) as g:
        folder = g.directory()
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        seen = sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if not p.is_dir())
        assert seen == sorted(g.names) and "planted.py" not in seen and len(seen) == 13
        loaded = directory_loader(folder)
        assert_same_tensors(loaded["weights"], original_tensors(release))
        assert loaded["config"] == json.loads((release["tree"] / "config.json").read_text())
    assert not os.path.exists(folder)  # removed with the guard


# -- a failing verification: nothing is handed out ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_flipped_byte_raises_and_the_loader_is_never_called(release, work, mode):
    flip(work / WEIGHTS, 50_000_000)
    called = []
    with pytest.raises(IntegrityError) as e:
        with guard(release, work, mode=mode) as g:
            called.append(stn.load_file(g.path(WEIGHTS)))
    assert called == [] and e.value.path == WEIGHTS and "mismatch" in e.value.message


@pytest.mark.parametrize("mode", MODES)
def test_a_signed_file_that_is_a_link_is_refused_even_to_the_same_bytes(release, work, tmp_path, mode):
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(work / WEIGHTS, outside)
    (work / WEIGHTS).unlink()
    (work / WEIGHTS).symlink_to(outside)
    with pytest.raises(SourceError) as e:
        guard(release, work, mode=mode)
    assert e.value.path == WEIGHTS and "symbolic link" in e.value.message


def test_an_unsigned_extra_file_fails_the_tree_and_is_never_handed_out(release, work):
    stn.save_file({"evil": np.ones(3, dtype=np.float32)}, str(work / "evil.safetensors"))
    with pytest.raises(IntegrityError) as e:
        guard(release, work)
    assert e.value.path == "evil.safetensors" and "extra" in e.value.message
    with guard(release, work, allow_extra=True) as g:
        assert g.report.ok and "evil.safetensors" not in g.names
        with pytest.raises(IntegrityError, match="not signed"):
            g.path("evil.safetensors")
        with pytest.raises(IntegrityError, match="not signed"):
            g.safetensors("evil.safetensors")


@pytest.mark.parametrize("name", ["../minilm/model.safetensors", "/etc/passwd", "1_Pooling/../config.json",
                                  "./config.json", "1_Pooling//config.json", "", "a\0b"])  # fmt: skip
def test_names_that_are_not_canonical_paths_inside_the_root_are_refused(release, work, name):
    with guard(release, work, only=[WEIGHTS]) as g:
        with pytest.raises(PathError):
            g.path(name)
        with pytest.raises(PathError):
            g.open(name)
    with pytest.raises(PathError):
        guard(release, work, only=[name])


def test_only_holds_the_files_named_and_refuses_the_rest(release, work):
    with guard(release, work, only=[WEIGHTS, "config.json"]) as g:
        assert g.names == ("config.json", WEIGHTS)
        with pytest.raises(UsageError, match="only"):
            g.path("vocab.txt")  # signed, but not checked by this guard
    with pytest.raises(IntegrityError, match="not signed"):
        guard(release, work, only=["missing.bin"])


# -- another valid bundle ----------------------------------------------------------------------------------------------


def test_a_valid_bundle_for_another_model_is_refused(release, tmp_path):
    tree = tmp_path / "model"
    shutil.copytree(release["other_tree"], tree)  # its own files: they match its bundle
    with pytest.raises(PolicyError, match="'other', not 'minilm'"):
        guard(release, tree, bundle="other")
    with guard(release, tree, bundle="other", name="other") as g:  # the same bundle, pinned to its own name
        assert g.names == ("config.json", WEIGHTS)


def test_an_older_release_is_refused_by_min_version_and_by_the_store(release, work):
    with pytest.raises(PolicyError, match="version 1; version 2 or later is required"):
        guard(release, work, bundle="v1", min_version=2, attestations=False)
    with guard(release, work, bundle="v1", attestations=False) as g:  # no store, no pin: nothing to compare with
        assert g.verified.version == 1
    guard(release, work).close()  # the store now holds version 2
    with pytest.raises(PolicyError, match="rollback"):
        guard(release, work, bundle="v1")


# -- attacks between check and use -------------------------------------------------------------------------------------


def other_safetensors(path: Path) -> None:
    stn.save_file({"embeddings.word_embeddings.weight": np.zeros((2, 2), dtype=np.float32)}, str(path))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("swap", ["symlink-outside", "renamed-over", "directory-link"])
def test_a_file_swapped_after_verification_never_reaches_the_loader(release, work, tmp_path, mode, swap):
    want = original_tensors(release)
    outside = tmp_path / "outside"
    outside.mkdir()
    other_safetensors(outside / WEIGHTS)
    (outside / "config.json").write_text('{"evil": true}\n')
    with guard(release, work, mode=mode) as g:
        folder = g.directory()
        if swap == "symlink-outside":
            (work / WEIGHTS).unlink()
            (work / WEIGHTS).symlink_to(outside / WEIGHTS)
        elif swap == "renamed-over":
            other_safetensors(work / "new.tmp")
            os.replace(work / "new.tmp", work / WEIGHTS)
        else:  # the whole model folder swapped for a link to another one
            os.rename(work, tmp_path / "moved")
            os.symlink(outside, work)
        assert stn.load_file(str(work / WEIGHTS)).keys() != want.keys()  # the attack worked on the name
        assert json.loads(Path(folder, "config.json").read_text()) != {"evil": True}
        if mode == "pinned" and swap != "directory-link":
            # Unlinking the verified file moves its ctime: pinned mode cannot tell that from a write, and refuses.
            with pytest.raises(IntegrityError, match="written since it verified"):
                g.path(WEIGHTS)
            with pytest.raises(IntegrityError, match="written since they verified"):
                g.close()  # the files are given back, and the change is said once more
            with pytest.raises(UsageError, match="closed"):
                g.path("config.json")
            return
        assert_same_tensors(stn.load_file(g.path(WEIGHTS)), want)  # not on the guard
        assert_same_tensors(stn.load_file(os.path.join(folder, WEIGHTS)), want)


def write_in_place(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_sealed_a_file_written_in_place_after_verification_still_gives_the_verified_bytes(release, work):
    want = original_tensors(release)
    with guard(release, work) as g:
        size = (work / WEIGHTS).stat().st_size
        write_in_place(work / WEIGHTS, size - 4096, b"\xff" * 4096)  # the last tensor's bytes, in the same inode
        assert stn.load_file(str(work / WEIGHTS)).keys() == want.keys()  # the file still parses: a silent change
        assert_same_tensors(stn.load_file(g.path(WEIGHTS)), want)
        assert g.open(WEIGHTS).read() == (release["tree"] / WEIGHTS).read_bytes()
        g.check()  # nothing held changed


def test_pinned_a_file_written_in_place_after_verification_is_refused(release, work):
    with pytest.raises(IntegrityError, match="written since"):  # the tripwire when the block ends
        with guard(release, work, mode="pinned") as g:
            reader = g.open(WEIGHTS)  # a merkle.open reader over the pinned file
            size = (work / WEIGHTS).stat().st_size
            write_in_place(work / WEIGHTS, size - 4096, b"\xff" * 4096)
            with pytest.raises(IntegrityError, match="written since it verified"):
                g.path(WEIGHTS)  # identity moved: not handed out
            with pytest.raises(IntegrityError, match="written since"):
                g.directory()
            reader.seek(size - 4096)
            with pytest.raises(ChunkError):
                reader.read(10)  # every chunk is checked as it is read
            assert g.path("config.json")  # the untouched files are still handed out


def test_the_sealed_copy_cannot_be_written_even_through_its_own_name(release, work):
    with guard(release, work, only=["config.json"]) as g:
        fd = os.open(g.path("config.json"), os.O_RDWR)
        try:
            with pytest.raises(PermissionError):
                os.pwrite(fd, b"x", 0)
            with pytest.raises(PermissionError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)
        assert g.open("config.json").read() == (release["tree"] / "config.json").read_bytes()
        # A loader that resolves the link gets the memory file's name, which opens nothing in the model folder.
        assert not os.path.realpath(g.path("config.json")).startswith(str(work))


def test_a_closed_guard_hands_out_nothing(release, work):
    with guard(release, work, only=["config.json"]) as g:
        path = g.path("config.json")
        held = os.readlink(path)
    with pytest.raises(UsageError, match="closed"):
        g.path("config.json")
    assert not os.path.lexists(path) or os.readlink(path) != held  # closed (the number may be another file's now)
