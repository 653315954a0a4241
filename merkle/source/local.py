"""Local files: safe opening (never blocks on a FIFO), opening confined to a
root (never through a link), capped reads of small documents, and atomic
writes (a reader never sees half a file).

The link policy (docs/cli.md, "Links"): a path the user names is opened as
named; below it, every directory is opened relative to its open parent, one
component at a time with O_NOFOLLOW, and the file relative to its directory,
so a directory swapped for a link after it was listed is refused, never read
through.  Links are followed only when the caller allows it, and then only
while they resolve inside the root (`resolve`): the kernel's RESOLVE_BENEATH,
done component by component, since Python does not expose openat2.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from merkle.errors import FormatError, SourceError, option

_OPEN_FLAGS = (
    os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_ROOT_FLAGS = _OPEN_FLAGS | getattr(os, "O_DIRECTORY", 0)
_DIR_FLAGS = _ROOT_FLAGS | _NOFOLLOW
MAX_LINKS = 40
"""Links followed while resolving one name (the kernel's own limit)."""

OUTSIDE = "symbolic link points outside the root"
BROKEN = "broken symbolic link"
LOOP = "too many levels of symbolic links"


def link_refused() -> str:
    """Why a symbolic link was not followed, naming the option that follows it."""
    return f"symbolic link refused (use {option('follow_symlinks=True')})"


def kind_of(mode: int) -> str:
    """A reader's name for a file type, for error messages."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return name
    return "an unknown kind of file"


def open_regular(
    path: str, follow_symlinks: bool = True, dir_fd: int | None = None, shown: str | None = None
) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without ever blocking (O_NONBLOCK keeps
    a FIFO from hanging the open); SourceError if it is anything else.
    `path` is relative to `dir_fd` when given; errors name `shown` (else
    `path`).  Twin of the extension's hash_one open (ext/_merkle.c)."""
    flags = _OPEN_FLAGS if follow_symlinks else _OPEN_FLAGS | _NOFOLLOW
    shown = path if shown is None else shown
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as e:
        raise SourceError(_os_reason(e), shown) from e
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise SourceError(_os_reason(e), shown) from e
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise SourceError(f"{kind_of(st.st_mode)}, not a regular file", shown)
    return fd, st


@dataclass(frozen=True)
class Root:
    """A directory that confines opens below it.  `path` is opened as given
    (the user named it); (dev, ino) pin the directory found then, so a root
    replaced since is refused, not read."""

    path: str
    dev: int
    ino: int

    @classmethod
    def open(cls, path: str) -> tuple[int, Root]:
        """An fd of directory `path` and the Root that pins it."""
        try:
            fd = os.open(path, _ROOT_FLAGS)
        except OSError as e:
            raise SourceError(e.strerror or str(e), path) from e
        try:
            st = os.fstat(fd)
        except OSError as e:
            os.close(fd)
            raise SourceError(e.strerror or str(e), path) from e
        return fd, cls(path, st.st_dev, st.st_ino)

    def reopen(self) -> int:
        """A new fd of this root; SourceError if it is gone or another directory."""
        fd, again = Root.open(self.path)
        if again != self:
            os.close(fd)
            raise SourceError("replaced by another directory since it was listed", self.path)
        return fd

    def open_dir(self, rel: str) -> int:
        """A new fd of directory `rel` ('/'-separated, '' for the root itself),
        opened down from the root without following any link."""
        fd = self.reopen()
        if not rel:
            return fd
        try:
            return descend(fd, rel.split("/"))
        finally:
            os.close(fd)

    def open_file(self, rel: str, follow_symlinks: bool = False) -> tuple[int, os.stat_result]:
        """Regular file `rel` below the root, under the link policy (`resolve`),
        then opened down from the root without following any link.
        SourceError naming the file otherwise; nothing but a regular file is
        ever opened."""
        fd = self.reopen()
        try:
            return self._open_file(fd, rel, follow_symlinks)
        finally:
            os.close(fd)

    def _open_file(self, fd: int, rel: str, follow_symlinks: bool) -> tuple[int, os.stat_result]:
        shown = os.path.join(self.path, *rel.split("/"))
        try:
            rel, st = resolve(self, fd, rel, follow_symlinks)
        except SourceError as e:
            raise SourceError(e.message, shown) from e
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{kind_of(st.st_mode)}, not a regular file", shown)
        directory, _, name = rel.rpartition("/")
        if not directory:
            return open_regular(name, False, fd, shown)
        try:
            dfd = descend(fd, directory.split("/"))
        except SourceError as e:
            raise SourceError(e.message, shown) from e
        try:
            return open_regular(name, False, dfd, shown)
        finally:
            os.close(dfd)


def open_below(root: str, rel: str, follow_symlinks: bool = False) -> tuple[int, os.stat_result]:
    """Regular file `rel` of the tree at `root` (a path the user named, opened
    as named), under the link policy: see Root.open_file."""
    fd, base = Root.open(root)
    try:
        return base._open_file(fd, rel, follow_symlinks)
    finally:
        os.close(fd)


def open_dir_at(dir_fd: int, name: str) -> int:
    """Directory `name` (one component) of open directory `dir_fd`, not
    through a link (OSError as the kernel raises it)."""
    return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def component_reason(e: OSError, dir_fd: int, name: str) -> str:
    """Why directory `name` of `dir_fd` could not be opened on the way down
    (O_DIRECTORY|O_NOFOLLOW on a link fails with ENOTDIR on Linux, ELOOP
    elsewhere: look at what is there)."""
    if e.errno in (errno.ENOTDIR, errno.ELOOP):
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return e.strerror or str(e)
        if stat.S_ISLNK(st.st_mode):
            return "symbolic link refused"
        if not stat.S_ISDIR(st.st_mode):
            return f"{kind_of(st.st_mode)}, not a directory"
    return e.strerror or str(e)


def descend(dir_fd: int, parts: Sequence[str]) -> int:
    """A new fd of directory `parts` below `dir_fd` (which stays open), opened
    one component at a time, never through a link.  SourceError
    `PREFIX: REASON` names the component that stopped the descent."""
    fd = dir_fd
    try:
        for i, name in enumerate(parts):
            try:
                below = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                raise SourceError(f"{'/'.join(parts[: i + 1])}: {component_reason(e, fd, name)}") from e
            if fd != dir_fd:
                os.close(fd)
            fd = below
    except BaseException:
        if fd != dir_fd:
            os.close(fd)
        raise
    return fd if fd != dir_fd else os.dup(dir_fd)


class NotFound(SourceError):
    """`resolve` found nothing at the name (no such entry on the way, or a
    regular file where a directory was named), as opposed to refusing
    something there (a link, a special file, a directory that would not
    open: an open that fails after the lstat said "directory" is a race,
    never "not found")."""


def resolve(root: Root, root_fd: int, rel: str, follow_symlinks: bool) -> tuple[str, os.stat_result]:
    """The canonical path below the root that `rel` names under the link
    policy, and its lstat: no component of the result is a link.  Without
    `follow_symlinks` a link anywhere is refused; with it, each link is
    followed while it stays inside the root (relative targets walk from the
    link's directory, `..` never above the root; absolute targets must lie
    under the root's path).  SourceError `PREFIX: REASON` (just REASON when
    the prefix is all of `rel`) otherwise: refused, outside, broken, loop."""
    parts = rel.split("/")
    # (component, index of the component of `rel` it stands for): a link's
    # target is blamed on the link.
    todo = [(name, i) for i, name in reversed(list(enumerate(parts))) if name not in ("", ".")]
    done: list[str] = []
    fds = [root_fd]
    links = 0

    def refused(reason: str, i: int) -> SourceError:
        prefix = "/".join(parts[: i + 1])
        return SourceError(reason if i == len(parts) - 1 else f"{prefix}: {reason}")

    try:
        while todo:
            name, i = todo.pop()
            via_link = links > 0
            if name == "..":
                if not done:
                    raise refused(OUTSIDE, i)
                done.pop()
                os.close(fds.pop())
                continue
            try:
                st = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
            except OSError as e:
                if via_link and e.errno in (errno.ENOENT, errno.ENOTDIR):
                    raise refused(BROKEN, i) from e
                if e.errno in (errno.ENOENT, errno.ENOTDIR):
                    raise NotFound(refused(e.strerror or str(e), i).message) from e
                raise refused(e.strerror or str(e), i) from e
            if stat.S_ISLNK(st.st_mode):
                if not follow_symlinks:
                    raise refused(link_refused(), i)
                links += 1
                if links > MAX_LINKS:
                    raise refused(LOOP, i)
                target = os.readlink(name, dir_fd=fds[-1])
                if target.startswith("/"):
                    inner = _inside(target, root.path)
                    if inner is None:
                        raise refused(OUTSIDE, i)
                    while len(fds) > 1:
                        os.close(fds.pop())
                    done.clear()
                    target = inner
                todo.extend((part, i) for part in reversed(target.split("/")) if part not in ("", "."))
                continue
            if not todo:  # the last component
                done.append(name)
                return "/".join(done), st
            if not stat.S_ISDIR(st.st_mode):
                if not via_link and stat.S_ISREG(st.st_mode):  # a file where a directory was named
                    raise NotFound(refused("not a directory", i).message)
                raise refused(BROKEN if via_link else f"{kind_of(st.st_mode)}, not a directory", i)
            try:
                fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
            except OSError as e:
                raise refused(component_reason(e, fds[-1], name), i) from e
            done.append(name)
        return "/".join(done), os.fstat(fds[-1])  # ended on '..': a directory, maybe the root itself
    finally:
        for fd in fds[1:]:
            os.close(fd)


def _inside(target: str, root: str) -> str | None:
    """An absolute link target as a path below `root`, or None outside it."""
    for base in dict.fromkeys((os.path.realpath(root), os.path.abspath(root))):
        base = base.rstrip("/")
        if target in (base, base + "/"):
            return ""
        if target.startswith(base + "/"):
            return target[len(base) + 1 :]
    return None


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:  # O_NOFOLLOW met a link
        return "is a symbolic link"
    return e.strerror or str(e)


def read_capped(path: str, max_bytes: int, follow_symlinks: bool = True, root: str | None = None) -> bytes:
    """The whole of a small regular file; FormatError if over `max_bytes`.
    With `root`, `path` is '/'-separated below it and opened under the link
    policy (`open_below`, no link followed); errors then name root/path."""
    if root is not None:
        fd, st = open_below(root, path)
        path = os.path.join(root, *path.split("/"))
    else:
        fd, st = open_regular(path, follow_symlinks)
    try:
        if st.st_size > max_bytes:
            raise FormatError(f"{st.st_size} bytes, larger than the {max_bytes}-byte limit", path)
        chunks = []
        remaining = max_bytes + 1
        while remaining > 0:
            data = os.read(fd, min(remaining, 1 << 20))
            if not data:
                break
            chunks.append(data)
            remaining -= len(data)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise FormatError(f"larger than the {max_bytes}-byte limit", path)
        return data
    except OSError as e:
        raise SourceError(_os_reason(e), path) from e
    finally:
        os.close(fd)


def check_output(path: str) -> None:
    """Refuse to replace anything but a regular file: renaming over a device,
    FIFO, symlink or directory would destroy it rather than write to it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise SourceError(f"cannot write: {e.strerror or e}", path) from e
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"cannot write: {kind_of(st.st_mode)} is in the way (only regular files are replaced)", path)


def write_atomic(path: str, data: bytes, mode: int = 0o666) -> None:
    """Write `data` to `path` through a temporary file and a rename
    (`mode` is masked by the umask, as open() would)."""
    check_output(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)[:200]}.{os.urandom(6).hex()}.tmp")
    try:  # as tempfile.mkstemp makes it (a new file, 0600, no link followed), without importing tempfile
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as e:
        raise SourceError(f"cannot write: {e.strerror or e}", path) from e
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, mode & ~umask)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except OSError as e:
        raise SourceError(f"cannot write: {e.strerror or e}", path) from e
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
