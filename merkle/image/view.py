"""The final view of the files under one path of an image, as its layers'
entries are applied in order (docs/images.md, I6, I9d): pure, no I/O.

Folders are indexed as a tree, so each entry costs O(its path's depth),
whatever the number of files: a whiteout of a folder, or a file where the
model path's folder was, drops a subtree at once.  A folder remembers the
newest layer that put anything below it, which tells, without a scan,
whether a whiteout names something of its own layer.

A whiteout hides the entries of the layers below.  One naming an entry of
its own layer (in either order), or a file above the model path in a layer
that also puts files under it, is a conflict: runtimes apply such a layer
differently (containerd and Docker remove what the layer wrote so far, the
OCI spec keeps it), so the layer is an error (I9d), never read one way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class InImage:
    """A file of the final view: its size and Merkle root, or why it cannot
    be checked, and the layer it comes from.  `job` >= 0: its root is the
    result of that hashing job, not known yet when it was put."""

    size: int
    root: bytes
    layer: int
    problem: str | None = None
    job: int = -1
    origin: int = -1
    """A hard link's: the layer its content comes from (-1: `layer`)."""
    suspect: str | None = None
    """Set when a layer it comes from fails its checks: then it is never OK."""


class _Folder:
    __slots__ = ("files", "folders", "newest")

    def __init__(self) -> None:
        self.files: dict[str, InImage] = {}
        self.folders: dict[str, _Folder] = {}
        self.newest = -1


class View:
    """The files under the model path so far, by path relative to it.
    Methods that find a conflict return it (a sentence naming the entry);
    None otherwise."""

    def __init__(self) -> None:
        self.root = _Folder()
        self.blocked: InImage | None = None
        """Set when the model path or a folder above it is a link: no file is read through it."""
        self.layer = -1
        self.whited: set[str] = set()  # this layer's whiteouts ("" for the model path or above)
        self.opaqued: set[str] = set()  # this layer's opaque folders, already emptied of the layers below

    def _enter(self, layer: int) -> None:
        if layer != self.layer:
            self.layer, self.whited, self.opaqued = layer, set(), set()

    def _folder(self, parts: list[str], create: bool = False, layer: int = -1) -> _Folder | None:
        node = self.root
        for part in parts:
            if create:
                node.newest = max(node.newest, layer)
                node = node.folders.setdefault(part, _Folder())
            else:
                found = node.folders.get(part)
                if found is None:
                    return None
                node = found
        if create:
            node.newest = max(node.newest, layer)
        return node

    def _whited(self, rel: str) -> bool:
        if "" in self.whited:
            return True
        parts = rel.split("/")
        return any("/".join(parts[:n]) in self.whited for n in range(1, len(parts) + 1))

    def get(self, rel: str) -> InImage | None:
        *parents, name = rel.split("/")
        node = self._folder(parents)
        return None if node is None else node.files.get(name)

    def put(self, rel: str, entry: InImage) -> str | None:
        """A file (or what stands for one: a link, a special file) at `rel`;
        a folder that was there is gone, with everything below it."""
        self._enter(entry.layer)
        *parents, name = rel.split("/")
        node = self._folder(parents, create=True, layer=entry.layer)
        assert node is not None
        node.files[name] = entry
        node.folders.pop(name, None)
        if self._whited(rel):
            return f"{rel} is both written and whited out in one layer (runtimes disagree on which wins)"
        return None

    def folder(self, rel: str, layer: int) -> None:
        """A folder entry at `rel`: a file (or a link, a special file) that a
        layer below put there is gone; one of this layer is kept, with its
        problem (a layer holding both decides nothing)."""
        self._enter(layer)
        got = self.get(rel)
        if got is not None and (got.problem is None or got.layer < layer):
            *parents, name = rel.split("/")
            node = self._folder(parents)
            assert node is not None
            del node.files[name]

    def hide(self, rel: str, layer: int) -> str | None:
        """A whiteout of `rel` ("" for the model path or a folder above it):
        what the layers below hold there is gone."""
        self._enter(layer)
        if rel == "":
            self.whited.add("")
            return self.clear(layer)
        self.whited.add(rel)
        *parents, name = rel.split("/")
        node = self._folder(parents)
        if node is None:
            return None
        same = False
        got = node.files.get(name)
        if got is not None:
            same = got.layer == layer
            del node.files[name]
        below = node.folders.pop(name, None)
        if below is not None and below.newest >= layer:
            same = True
        return f"a whiteout of {rel}, which its own layer holds (runtimes disagree on which wins)" if same else None

    def opaque(self, rel: str, layer: int) -> None:
        """An opaque whiteout of folder `rel` ("" for the model path): its
        entries of the layers below are gone, this layer's stay."""
        self._enter(layer)
        parts = rel.split("/") if rel else []
        if any("/".join(parts[:n]) in self.opaqued for n in range(len(parts) + 1)):
            return  # a folder already emptied of the layers below in this layer
        self.opaqued.add(rel)
        node = self._folder(parts)
        if node is None:
            return
        if node.newest < layer:
            node.files, node.folders = {}, {}
            return
        stack = [node]
        while stack:
            here = stack.pop()
            here.files = {k: f for k, f in here.files.items() if f.layer >= layer}
            here.folders = {k: d for k, d in here.folders.items() if d.newest >= layer}
            stack.extend(d for d in here.folders.values())

    def clear(self, layer: int) -> str | None:
        """Everything under the model path is gone: a whiteout of it or of a
        folder above it, or a file where one of those folders was."""
        self._enter(layer)
        same = self.root.newest >= layer
        self.root = _Folder()
        if same:
            return "the model path is removed by the layer that also writes files under it (runtimes disagree)"
        return None

    def block(self, layer: int, why: str) -> None:
        self.clear(layer)
        self.blocked = InImage(0, b"", layer, why)

    def files(self) -> Iterator[tuple[str, InImage]]:
        """Every file of the view, by its path under the model path."""
        stack: list[tuple[str, _Folder]] = [("", self.root)]
        while stack:
            where, node = stack.pop()
            for name, f in node.files.items():
                yield where + name, f
            stack.extend((f"{where}{name}/", d) for name, d in node.folders.items())
