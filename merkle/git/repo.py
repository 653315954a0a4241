"""A git work tree's commit, read from its objects (merkle.git).

`open_repo(root)` finds `root/.git` (a real directory: a `.git` file, as a
linked worktree or a submodule has, points at objects outside the folder and
is refused, and so are alternates), resolves the commit (HEAD, or the one
the caller names), and lists the commit's files from its trees.  Objects are
read with `git cat-file --batch-command` and each one is hashed here against
its id with the repository's object format (SHA-1 or SHA-256), so what is
listed is what the commit id names.  Blobs are not read, except those small
enough to be git-lfs pointers (under 1,024 bytes), which are read, checked
and parsed: a file whose blob is a pointer is an LFS file, and its content
is checked against the pointer's SHA-256 and size.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Final

from merkle.errors import SourceError, UsageError, option
from merkle.format.hub import MAX_POINTER_SIZE, parse_lfs_pointer
from merkle.format.paths import path_problem

TIMEOUT: Final = 300.0
MAX_ENTRIES: Final = 10_000_000
"""Files and folders a commit may list (tree by tree, each counted where it
is reached: a tree named under many paths counts each time)."""
MAX_TREE_BYTES: Final = 64 << 20
FILE_MODES: Final = {"100644": "file", "100755": "executable", "120000": "link", "160000": "submodule"}
_HEX: Final = {"sha1": 40, "sha256": 64}
_CONFIG: Final = (
    # Nothing of the repository's own configuration may make git run a program, reach the network or
    # read another repository's objects: no fsmonitor or hooks, no transport (a partial clone's lazy
    # fetch), no replace refs (which would make an id name other content).
    "-c", "safe.directory=*",
    "-c", "core.fsmonitor=false",
    "-c", f"core.hooksPath={os.devnull}",
    "-c", "protocol.allow=never",
    "-c", "core.useReplaceRefs=false",
    "-c", "core.pager=cat",
)  # fmt: skip


@dataclass(frozen=True)
class GitEntry:
    """One file of the commit: `size` is its blob's size (the pointer's, for
    an LFS file), `lfs` the pointer's (sha256, size) when the blob is one."""

    path: str
    mode: str
    blob_id: str
    size: int
    lfs: tuple[str, int] | None = None

    @property
    def kind(self) -> str:
        return FILE_MODES[self.mode]


@dataclass
class GitRepo:
    """A work tree and the commit it is checked against."""

    root: str
    git_dir: str
    object_format: str
    commit: str
    head_ref: str | None
    """The branch HEAD names (`refs/heads/main`), None when detached or pinned."""
    pinned: bool
    """The commit was named by the caller, not taken from HEAD."""
    shallow: bool
    remote_url: str | None
    """The fetch URL of the branch's remote (or `origin`), without credentials."""
    entries: dict[str, GitEntry] = field(default_factory=dict)


def git_env(git_dir: str) -> dict[str, str]:
    """The environment git runs in: the repository named, nothing of the
    user's or the system's configuration, no prompts, pagers or locks."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "GIT_DIR": git_dir,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "HOME": os.devnull,
        "XDG_CONFIG_HOME": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_PAGER": "cat",
        "LC_ALL": "C",
    }


def _git(git_dir: str, shown: str, *args: str, check: bool = True) -> tuple[int, bytes]:
    try:
        done = subprocess.run(
            ["git", *_CONFIG, *args],
            env=git_env(git_dir),
            cwd=git_dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
        )
    except FileNotFoundError as e:
        raise UsageError("reading a git clone needs the git command, which is not installed", shown) from e
    except subprocess.TimeoutExpired as e:
        raise SourceError(f"git {args[0]} took longer than {TIMEOUT:g} s", shown) from e
    if check and done.returncode != 0:
        raise SourceError(f"git {args[0]}: {_last_line(done.stderr)}", shown)
    return done.returncode, done.stdout


def _last_line(stderr: bytes) -> str:
    lines = [ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1].removeprefix("fatal: ").strip()[:300] if lines else "failed"


def git_dir_of(root: str) -> str | None:
    """`root/.git` when it is a real directory; None when there is no
    `.git`; SourceError for a `.git` that is a file (a linked worktree or a
    submodule: its objects are elsewhere) or a link."""
    git_dir = os.path.join(root, ".git")
    try:
        st = os.lstat(git_dir)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SourceError(f"cannot read: {e.strerror or e}", git_dir) from e
    if stat.S_ISDIR(st.st_mode):
        return git_dir
    if stat.S_ISREG(st.st_mode):
        raise SourceError(
            "a .git file (a linked worktree or a submodule): its objects are outside this folder; "
            "check the main clone instead",
            git_dir,
        )
    raise SourceError("is not a directory (a link or a special file): not read", git_dir)


def open_repo(root: str, revision: str | None = None) -> GitRepo | None:
    """The clone at `root` checked against `revision` (a full commit id,
    pinned; any other name is resolved by git in the clone's own refs), or
    against HEAD; None when `root` holds no `.git`."""
    shown = root
    git_dir = git_dir_of(root)
    if git_dir is None:
        return None
    if os.path.exists(os.path.join(git_dir, "objects", "info", "alternates")):
        raise SourceError("objects/info/alternates: objects are read from another repository; not checked", git_dir)
    _, out = _git(git_dir, shown, "rev-parse", "--show-object-format")
    object_format = out.decode("ascii", "replace").strip()
    if object_format not in _HEX:
        raise SourceError(f"unknown object format {object_format!r}", git_dir)
    hex_len = _HEX[object_format]
    head_ref = None
    pinned = revision is not None and re.fullmatch(f"[0-9a-f]{{{hex_len}}}", revision) is not None
    if pinned:
        assert revision is not None
        commit = revision
    else:
        name = "HEAD" if revision is None else revision
        if not name or name.startswith("-") or any(c.isspace() or ord(c) < 32 for c in name):
            raise UsageError(f"{option('revision')} {name!r} is not a commit id or a ref name", shown)
        code, out = _git(git_dir, shown, "rev-parse", "--verify", "-q", "--end-of-options", name + "^{commit}",
                         check=False)  # fmt: skip
        if code != 0:
            what = "HEAD names no commit (an empty clone?)" if revision is None else f"no commit {name!r} here"
            raise SourceError(what, root)
        commit = out.decode("ascii", "replace").strip()
        if revision is None:
            code, out = _git(git_dir, shown, "symbolic-ref", "-q", "HEAD", check=False)
            head_ref = out.decode("utf-8", "replace").strip() if code == 0 else None
    repo = GitRepo(
        root,
        git_dir,
        object_format,
        commit,
        head_ref,
        pinned,
        os.path.exists(os.path.join(git_dir, "shallow")),
        _remote_url(git_dir, shown, head_ref),
    )
    with _Objects(git_dir, shown, object_format) as objects:
        repo.entries = _list_commit(objects, commit)
    return repo


def _remote_url(git_dir: str, shown: str, head_ref: str | None) -> str | None:
    remote = "origin"
    if head_ref is not None and head_ref.startswith("refs/heads/"):
        code, out = _git(git_dir, shown, "config", "--get", f"branch.{head_ref[11:]}.remote", check=False)
        if code == 0 and out.strip():
            remote = out.decode("utf-8", "replace").strip()
    code, out = _git(git_dir, shown, "config", "--get", f"remote.{remote}.url", check=False)
    if code != 0:
        return None
    return public_url(out.decode("utf-8", "replace").strip())


def public_url(url: str) -> str | None:
    """`url` without what could be a secret: user name and password, query
    and fragment; None for a URL that is empty or has control characters."""
    if not url or any(ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme and parts.netloc:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port is not None else "")
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if re.match(r"[^/@:]+@[^/:]+:", url):  # scp-like user@host:path: the user of an ssh login, no secret
        return url
    return url.split("?", 1)[0].split("#", 1)[0]


_HUB_HOSTS: Final = ("huggingface.co", "www.huggingface.co", "hf.co")
_HUB_PATH: Final = re.compile(r"/(?:(?P<type>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+?|[^/]+?)(?:\.git)?/?")


def hub_repo_of_url(url: str | None) -> tuple[str, str] | None:
    """(repo id, repo type) when `url` is a Hugging Face Hub repository's
    https URL, else None."""
    from merkle.format.origin import is_repo_id

    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or (parts.hostname or "") not in _HUB_HOSTS:
        return None
    m = _HUB_PATH.fullmatch(parts.path)
    if m is None or not is_repo_id(m["repo"]):
        return None
    return m["repo"], {"datasets": "dataset", "spaces": "space"}.get(m["type"] or "", "model")


class _Objects:
    """`git cat-file --batch-command`, each object checked against its id."""

    def __init__(self, git_dir: str, shown: str, object_format: str) -> None:
        self.shown = shown
        self.object_format = object_format
        self.raw_len = _HEX[object_format] // 2
        try:
            self.proc = subprocess.Popen(
                ["git", *_CONFIG, "cat-file", "--batch-command"],
                env=git_env(git_dir),
                cwd=git_dir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except FileNotFoundError as e:
            raise UsageError("reading a git clone needs the git command, which is not installed", shown) from e

    def __enter__(self) -> _Objects:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if kind is not None:  # a reply was wrong: what git still has to say is not wanted
            self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def ask(self, commands: list[tuple[str, str]]) -> list[tuple[str, int, bytes | None]]:
        """Each `(verb, id)` ("info" or "contents") answered: (type, size,
        content or None), content checked against its id.  Commands are
        written from a thread while replies are read, so neither side waits
        on a full pipe."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = b"".join(f"{verb} {oid}\n".encode("ascii") for verb, oid in commands)
        errors: list[BaseException] = []

        def write() -> None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except OSError as e:  # git stopped: the reads below say why
                errors.append(e)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        out: list[tuple[str, int, bytes | None]] = []
        read = self.proc.stdout
        for verb, oid in commands:
            header = read.readline(1024)
            parts = header.decode("ascii", "replace").split()
            if len(parts) == 2 and parts[1] == "missing":
                raise SourceError(f"object {oid} is missing (a damaged or shallow clone?)", self.shown)
            if len(parts) != 3 or parts[0] != oid or not parts[2].isdigit():
                raise SourceError(f"git cat-file: unexpected reply for {oid}: {header[:100]!r}", self.shown)
            kind, size = parts[1], int(parts[2])
            content = None
            if verb == "contents":
                content = read.read(size)
                if len(content) != size or read.read(1) != b"\n":
                    raise SourceError(f"git cat-file: object {oid} cut short", self.shown)
                h = hashlib.new(self.object_format)
                h.update(b"%s %d\0" % (kind.encode("ascii"), size))
                h.update(content)
                if h.hexdigest() != oid:
                    raise SourceError(f"object {oid} does not hash to its id: the repository is damaged", self.shown)
            out.append((kind, size, content))
        writer.join()
        return out


def _list_commit(objects: _Objects, commit: str) -> dict[str, GitEntry]:
    ((kind, _, content),) = objects.ask([("contents", commit)])
    if kind != "commit" or content is None:
        raise SourceError(f"{commit} is a {kind}, not a commit", objects.shown)
    m = re.match(rb"tree ([0-9a-f]+)\n", content)
    if m is None:
        raise SourceError(f"commit {commit} names no tree", objects.shown)
    files: list[tuple[str, str, str]] = []  # (path, mode, blob id)
    level = [("", m.group(1).decode("ascii"))]
    parsed: dict[str, list[tuple[str, str, str]]] = {}
    count = 0
    while level:  # one level of folders at a time: one round trip each
        wanted = sorted({oid for _, oid in level if oid not in parsed})
        for oid, (kind, size, body) in zip(wanted, objects.ask([("contents", o) for o in wanted]), strict=True):
            if kind != "tree" or body is None:
                raise SourceError(f"object {oid} is a {kind} where a tree is named", objects.shown)
            if size > MAX_TREE_BYTES:
                raise SourceError(f"tree {oid} is larger than {MAX_TREE_BYTES >> 20} MiB", objects.shown)
            parsed[oid] = _parse_tree(body, objects.raw_len, oid, objects.shown)
        below = []
        for prefix, oid in level:
            for mode, name, child in parsed[oid]:
                count += 1
                if count > MAX_ENTRIES:
                    raise SourceError(f"the commit lists more than {MAX_ENTRIES:,} entries", objects.shown)
                path = prefix + name
                if mode == "40000":
                    below.append((path + "/", child))
                else:
                    files.append((path, mode, child))
        level = below
    blobs = sorted({oid for _, mode, oid in files if mode != "160000"})
    sizes = {oid: size for oid, (_, size, _) in zip(blobs, objects.ask([("info", o) for o in blobs]), strict=True)}
    small = [oid for oid in blobs if sizes[oid] < MAX_POINTER_SIZE]
    pointers = {}
    for oid, (_, _, body) in zip(small, objects.ask([("contents", o) for o in small]), strict=True):
        parsed_pointer = parse_lfs_pointer(body or b"")
        if parsed_pointer is not None:
            pointers[oid] = parsed_pointer
    out = {}
    for path, mode, oid in files:
        lfs = pointers.get(oid) if mode in ("100644", "100755") else None
        out[path] = GitEntry(path, mode, oid, sizes.get(oid, 0), lfs)
    return out


_ENTRY: Final = re.compile(rb"(\d{5,6}) ([^\0]+)\0")


def _parse_tree(body: bytes, raw_len: int, oid: str, shown: str) -> list[tuple[str, str, str]]:
    """(mode, name, id) of each entry of a tree object, strictly."""
    out = []
    pos = 0
    while pos < len(body):
        m = _ENTRY.match(body, pos)
        if m is None or m.end() + raw_len > len(body):
            raise SourceError(f"tree {oid} is malformed at byte {pos}", shown)
        mode = m.group(1).decode("ascii")
        if mode not in FILE_MODES and mode != "40000":
            raise SourceError(f"tree {oid} has an entry of unknown mode {mode}", shown)
        try:
            name = m.group(2).decode("utf-8")
        except UnicodeDecodeError as e:
            raise SourceError(f"tree {oid} has a name that is not UTF-8: {m.group(2)[:80]!r}", shown) from e
        problem = path_problem(name)
        if problem or "/" in name or name == ".git":
            raise SourceError(f"tree {oid} has an entry {name[:80]!r} no work tree can hold", shown)
        child = body[m.end() : m.end() + raw_len].hex()
        out.append((mode, name, child))
        pos = m.end() + raw_len
    return out
