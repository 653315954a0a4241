"""A directory only the current user can write, for state that steers
merkle's work (checkpoints): no other user can plant or change it.

The boundary: files of the user running merkle are trusted (whoever runs as
that user can run merkle as that user); nothing another user could write is.
So the directory is opened once without following a link and checked on the
open descriptor (fstat): a directory, owned by the effective uid, writable by
nobody else.  Everything inside is opened relative to that descriptor
(`dir_fd`), never following a link, and checked the same way, so renaming or
replacing the path afterwards changes nothing.  A directory merkle creates is
0700, its files 0600.

A secret key kept in it (`secret`) authenticates what merkle writes there:
a record copied from elsewhere, or written for other parameters, does not
verify.
"""

from __future__ import annotations

import errno
import os
import stat

from merkle.errors import SourceError, UnsafeStateError

KEY_BYTES = 32
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_OTHERS_ANY = stat.S_IRWXG | stat.S_IRWXO
_OPEN = os.O_CLOEXEC | os.O_NOFOLLOW


def cache_dir(env: str, name: str) -> str:
    """$ENV if set, else `merkle/NAME` under $XDG_CACHE_HOME, else under ~/.cache."""
    if os.environ.get(env):
        return os.environ[env]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "merkle", name)


def _check(st: os.stat_result, kind: str, forbidden: int, path: str) -> None:
    is_kind = stat.S_ISDIR if kind == "directory" else stat.S_ISREG
    if not is_kind(st.st_mode):
        raise UnsafeStateError(f"not a {kind}", path)
    if st.st_uid != os.geteuid():
        raise UnsafeStateError(f"owned by uid {st.st_uid}, not by the current user ({os.geteuid()})", path)
    if st.st_mode & forbidden:
        who = "read or written" if forbidden == _OTHERS_ANY else "written"
        raise UnsafeStateError(f"mode {stat.S_IMODE(st.st_mode):04o}: can be {who} by other users", path)


class PrivateDir:
    """An open, checked private directory (see the module's doc)."""

    def __init__(self, path: str) -> None:
        """Open `path`, creating it (0700, and its missing parents) if needed.
        Raises UnsafeStateError if it is a link, not a directory, not the
        current user's or writable by others; SourceError if it cannot be
        made or opened."""
        self.path = path
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _OPEN)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeStateError("a symbolic link or not a directory", path) from e
            raise SourceError(f"cannot open: {e.strerror or e}", path) from e
        try:
            _check(os.fstat(self.fd), "directory", _OTHERS_WRITE, path)
        except BaseException:
            os.close(self.fd)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def where(self, name: str) -> str:
        return os.path.join(self.path, name)

    def open(self, name: str, flags: int, forbidden: int = _OTHERS_WRITE) -> int:
        """A descriptor for `name` inside (created 0600 with O_CREAT), never
        through a link; the file is checked on the descriptor.  OSError
        (ELOOP for a link) propagates; a file not ours is UnsafeStateError."""
        try:
            fd = os.open(name, flags | _OPEN, 0o600, dir_fd=self.fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafeStateError("a symbolic link", self.where(name)) from e
            raise
        try:
            _check(os.fstat(fd), "file", forbidden, self.where(name))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def names(self, name: str, fd: int) -> bool:
        """Whether `name` is still the file open as `fd` (not unlinked or
        replaced since it was opened)."""
        try:
            now = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        then = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (then.st_dev, then.st_ino)

    def unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass

    def secret(self, name: str = "key") -> bytes:
        """The directory's secret key: KEY_BYTES random bytes in `name`
        (0600, readable by nobody else), made on first use.  It appears
        whole or not at all: written under a temporary name, then linked."""
        for _ in range(2):
            try:
                return self._read_secret(name)
            except FileNotFoundError:
                pass
            tmp = f".{name}.{os.urandom(8).hex()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN, 0o600, dir_fd=self.fd)
            try:
                os.write(fd, os.urandom(KEY_BYTES))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            except FileExistsError:
                pass  # another process made it first: read theirs
            finally:
                os.unlink(tmp, dir_fd=self.fd)
        return self._read_secret(name)

    def _read_secret(self, name: str) -> bytes:
        fd = self.open(name, os.O_RDONLY, _OTHERS_ANY)
        try:
            key = os.read(fd, KEY_BYTES + 1)
        finally:
            os.close(fd)
        if len(key) != KEY_BYTES:
            raise UnsafeStateError(f"not a {KEY_BYTES}-byte key", self.where(name))
        return key
