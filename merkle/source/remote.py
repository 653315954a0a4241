"""Object stores and other fsspec file systems: listing a prefix and reading
objects in ranges, with retries, for the same engine that hashes local files.

An object is read in ranged requests no larger than the engine's buffer, so
no object is ever held whole; bytes in flight are bounded by workers x buffer.
A read that fails transiently is retried with exponential backoff; an object
whose ETag, version or size changes between listing and the end of hashing
is an error, never a verified result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from merkle.errors import SourceError, UsageError, install_hint
from merkle.format.paths import path_problem
from merkle.source.readers import Listed, Opener, Reader, fill
from merkle.source.walk import Excluder, WalkProblem

RETRIES = 5
BACKOFF = 0.2
WINDOW = 4 << 20  # bytes per ranged GET of a large object; in flight <= workers x WINDOW


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


@dataclass(frozen=True)
class RemoteObject:
    path: str
    """Canonical path relative to the listed prefix."""
    abspath: str
    """The file system's own path (bucket/key)."""
    size: int
    etag: str | None
    version_id: str | None

    @property
    def identity(self) -> tuple[int, str | None, str | None]:
        """What must not change between listing and hashing (and resuming)."""
        return (self.size, self.etag, self.version_id)

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": self.size}
        if self.etag:
            out["etag"] = self.etag
        if self.version_id:
            out["version_id"] = self.version_id
        return out


def filesystem(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError as e:
        raise UsageError(f"reading URLs needs fsspec: {install_hint('s3')}") from e
    try:
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError as e:
        raise UsageError(f"{e} ({install_hint('s3')} for s3://)") from e
    except ValueError as e:
        raise UsageError(f"cannot open {url}: {e}") from e
    return fs, root.rstrip("/")


def filesystem_of(protocol: str, storage_options: dict[str, Any]) -> Any:
    """The file system of `protocol` with these options, as `filesystem`
    opened it (fsspec keeps one instance per protocol and options), or anew
    in another process."""
    import fsspec

    return fsspec.filesystem(protocol, **storage_options)


def _describe(e: BaseException) -> str:
    name = type(e).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
    if isinstance(e, FileNotFoundError):
        return "no such bucket, prefix or object"
    if isinstance(e, PermissionError):
        return "access denied"
    return str(e) or name


def _lasting(e: BaseException) -> bool:
    """A failure that no retry mends: no credentials, access denied."""
    return isinstance(e, PermissionError) or type(e).__name__ in ("NoCredentialsError", "PartialCredentialsError")


def list_objects(
    url: str, exclude: Sequence[str], storage_options: dict[str, Any] | None = None
) -> tuple[Any, list[RemoteObject], list[WalkProblem]]:
    """Every object under `url`, sorted by canonical relative path.

    A key names a file only when the part after the prefix and its '/' is
    already a canonical path and reads back as the same key: nothing is
    normalised, so no two keys can land on one path and no key is left out
    unseen.  Every other key under the prefix is a problem (`unmapped`),
    excluded or not; only zero-byte directory markers (`prefix/`, `dir/`,
    written by consoles and sync tools) are passed over, as empty local
    directories are.  A prefix that is itself an object as well is refused:
    the URL would name two things."""
    fs, root = filesystem(url, storage_options)
    try:
        fs.invalidate_cache(root)  # a cached listing would hide changes
        top = fs.info(root)  # FileNotFoundError when there is nothing at all
        infos = fs.find(root, detail=True, withdirs=False)
    except Exception as e:  # botocore and aiohttp raise many types; name the cause
        raise SourceError(_describe(e), url) from e
    if set(infos) == {root}:  # the URL names one object
        info = infos[root]
        name = root.rsplit("/", 1)[-1]
        problem = path_problem(name)
        if problem:
            raise SourceError(f"unsupported object name: {problem}", url)
        return fs, [_remote_object(name, root, info)], []
    if top.get("type") == "file" and infos:
        raise SourceError(
            f"is an object and also a prefix of {len(infos)} other object(s): the URL names both, "
            "so neither is checked; name the prefix or the object without the other",
            url,
        )
    excluded = Excluder(exclude)
    objects, problems = [], []
    base = root + "/"
    for abspath, info in infos.items():
        if info.get("type", "file") != "file":
            continue
        if not abspath.startswith(base):  # fsspec backends list below the prefix; refuse anything else
            problems.append(_unmapped(abspath, "listed outside the prefix"))
            continue
        rel = abspath[len(base) :]
        if rel == "" or rel.endswith("/"):
            marker_of = rel[:-1]
            if int(info["size"]) == 0 and (marker_of == "" or not path_problem(marker_of)):
                continue  # a directory marker: no content, and it names a canonical directory
            problems.append(_unmapped(rel, f"object key ends with '/' ({int(info['size'])} bytes)"))
            continue
        problem = path_problem(rel) or _read_as_another_key(fs, abspath)
        if problem:
            problems.append(_unmapped(rel, f"object key does not name one canonical path: {problem}"))
            continue
        if not excluded.covers(rel):
            objects.append(_remote_object(rel, abspath, info))
    objects.sort(key=lambda o: o.path)
    problems.sort(key=lambda p: p.path)
    return fs, objects, problems


def _remote_object(rel: str, abspath: str, info: dict[str, Any]) -> RemoteObject:
    etag = info.get("ETag") or info.get("etag")
    version = info.get("VersionId") or info.get("version_id")
    return RemoteObject(rel, abspath, int(info["size"]), etag, version)


def _unmapped(rel: str, reason: str) -> WalkProblem:
    # Shown relative to the prefix, escaped: a key may hold any character.
    return WalkProblem(ascii(rel)[1:-1], reason, unmapped=True)


def _read_as_another_key(fs: Any, abspath: str) -> str | None:
    """Why reading `abspath` would fetch another object, or None.  s3fs (and
    gcsfs, adlfs) split a version or generation off a path as they read it:
    `key?versionId=v` reads version v of `key`."""
    split = getattr(fs, "split_path", None)
    if split is None:
        return None
    try:
        bucket, key, version = split(abspath)[:3]
    except Exception:  # a name its own file system cannot parse
        return "the file system cannot address it"
    if version or f"{bucket}/{key}" != abspath:
        return f"reading it would read {bucket}/{key}" + (f" version {version}" if version else "")
    return None


class RemoteReader:
    """Ranged, retried reads of one object; `check_end` refreshes its
    metadata and refuses a change since listing."""

    def __init__(self, fs: Any, obj: RemoteObject) -> None:
        self.fs = fs
        self.obj = obj
        self.name = obj.path
        self._window = b""
        self._window_start = 0

    def size(self) -> int:
        return self.obj.size

    def close(self) -> None:
        """Nothing to release: every read is a request of its own."""

    def __enter__(self) -> RemoteReader:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        # Every unit, not just the last: units of one object run on several
        # workers, and each must have read the object that was listed.
        if error is None:
            self._same_object()

    def read_into(self, offset: int, view: memoryview) -> int:
        return fill(self._read_some, offset, view)

    def _read_some(self, offset: int, view: memoryview) -> int:
        """Objects larger than WINDOW are fetched a WINDOW at a time (requests
        cost more than bytes, and chunks are often smaller); smaller objects
        exactly as asked.  A short body just ends the window early."""
        if offset >= self.obj.size or not len(view):
            return 0
        if self.obj.size <= WINDOW:
            return self._copy(self._fetch(offset, min(offset + len(view), self.obj.size)), view)
        inside = offset - self._window_start
        if not 0 <= inside < len(self._window):
            self._window = self._fetch(offset, min(offset + max(WINDOW, len(view)), self.obj.size))
            self._window_start, inside = offset, 0
        return self._copy(memoryview(self._window)[inside : inside + len(view)], view)

    @staticmethod
    def _copy(data: bytes | memoryview, view: memoryview) -> int:
        view[: len(data)] = data
        return len(data)

    def _fetch(self, offset: int, end: int) -> bytes:
        kwargs: dict[str, Any] = {}
        if self.obj.version_id and getattr(self.fs, "version_aware", False):
            kwargs["version_id"] = self.obj.version_id  # pinned: an overwrite cannot mix in

        def fetch() -> bytes:
            data: bytes = self.fs.cat_file(self.obj.abspath, start=offset, end=end, **kwargs)
            if not data:  # the object is longer than this: an empty body is a fault, not an end
                raise ConnectionError(f"empty response for bytes {offset}-{end}")
            return data

        data: bytes = self._retry(fetch, f"read at {offset}")
        if len(data) > end - offset:
            raise SourceError(f"server returned {len(data)} bytes for a {end - offset}-byte range", self.obj.path)
        return data

    def fetch_exactly(self, start: int, end: int) -> bytes:
        """Bytes [start, end), in as many ranged GETs as a server that cuts
        bodies short needs; SourceError if the object ends before `end`."""
        parts, got = [], start
        while got < end:
            if got >= self.obj.size:
                raise SourceError(f"ends at byte {got}; {self.obj.size} bytes were expected", self.obj.path)
            data = self._fetch(got, end)
            parts.append(data)
            got += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def check_end(self) -> None:
        """Nothing to do: the listed size bounds every read, and each unit
        compares the object's metadata when it ends."""

    def _same_object(self) -> None:
        info = self._retry(lambda: self.fs.info(self.obj.abspath, refresh=True), "re-reading metadata")
        # A plain listing of a versioned bucket names no versions, while HEAD
        # does: compare versions only when the listing had them.
        version = (info.get("VersionId") or info.get("version_id")) if self.obj.version_id else None
        now = (int(info["size"]), info.get("ETag") or info.get("etag"), version)
        if now != self.obj.identity:
            raise SourceError("object changed while hashing (size, ETag or version)", self.obj.path)

    def _retry(self, call: Any, what: str) -> Any:
        delay = BACKOFF
        for attempt in range(RETRIES + 1):
            try:
                return call()
            except FileNotFoundError as e:
                raise SourceError("no such object (deleted since it was listed?)", self.obj.path) from e
            except Exception as e:  # transient: connection reset, 5xx, timeouts
                if attempt == RETRIES or _lasting(e):
                    tries = "" if _lasting(e) else f" after {RETRIES + 1} attempts"
                    raise SourceError(f"{what} failed{tries}: {_describe(e)}", self.obj.path) from e
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


def remote_opener(fs: Any) -> Opener:
    def open_remote(src: Listed) -> Reader:
        assert isinstance(src, RemoteObject)
        return RemoteReader(fs, src)

    return open_remote
