"""The cyclic collector is paused while a build, a verify or a manifest load
makes its millions of objects (merkle/_gc.py), and comes back as it was."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import merkle
from merkle._gc import paused
from merkle.errors import SourceError
from merkle.format.manifest import Manifest


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """Generations of the collections that start while the test runs, with a
    threshold so low that any work of a few hundred objects triggers one."""
    seen: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    old = gc.get_threshold()
    gc.callbacks.append(note)
    gc.set_threshold(10, 2, 2)
    try:
        yield seen
    finally:
        gc.callbacks.remove(note)
        gc.set_threshold(*old)


def _tree(root: Path, n: int) -> Path:
    for i in range(n):
        (root / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 7}" / f"f{i}").write_bytes(b"x" * (i % 50))
    return root


def test_no_collection_runs_during_build_verify_or_load(tmp_path: Path, collections: list[int]) -> None:
    tree = _tree(tmp_path / "t", 600)
    data = merkle.build(tree).to_json()  # the modules they import load now (imports do collect)
    merkle.verify(tree, Manifest.from_json(data))
    gc.collect()
    collections.clear()
    manifest = merkle.build(tree)
    during_build = list(collections)
    report = merkle.verify(tree, manifest)
    during_verify = list(collections)
    loaded = Manifest.from_json(data)
    assert report.ok and loaded == manifest
    # One collection may start as a pause begins or ends (its own objects);
    # without it, each step runs hundreds at this threshold.
    assert len(during_build) <= 2, during_build
    assert len(during_verify) - len(during_build) <= 2, during_verify
    assert len(collections) - len(during_verify) <= 2, collections
    assert gc.isenabled()
    [object() for _ in range(100)], [[] for _ in range(100)]
    gc.collect()
    assert collections, "the collector is back on afterwards"


def test_the_collector_comes_back_after_a_failure(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        merkle.build(tmp_path / "absent")
    assert gc.isenabled()


def test_a_collector_switched_off_by_the_caller_stays_off(tmp_path: Path) -> None:
    gc.disable()
    try:
        merkle.build(_tree(tmp_path / "t", 5))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_nested_and_concurrent_pauses_end_with_the_last() -> None:
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with paused():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=other)
    with paused():
        t.start()
        assert inside.wait(10)
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert not gc.isenabled(), "the other thread's pause still runs"
    leave.set()
    t.join()
    assert gc.isenabled()
