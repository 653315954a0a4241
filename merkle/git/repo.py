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

STALL: Final = 60.0
"""Seconds git may take to answer (a FIFO where an object should be would block it for ever)."""
MAX_SMALL: Final = 1 << 20
"""Largest commit, tag or .gitattributes read."""
MAX_ENTRIES: Final = 2_000_000
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
    on_remote: bool = False
    """The commit is the tip of one of that remote's branches, as the clone last fetched it."""
    entries: dict[str, GitEntry] = field(default_factory=dict)


def git_env(git_dir: str | None, objects: str | None = None) -> dict[str, str]:
    """The environment git runs in: the (private) repository named, the
    clone's object folder, nothing of the user's or the system's
    configuration, no prompts, pagers, locks or lazy fetches."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "HOME": os.devnull,
        "XDG_CONFIG_HOME": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_NO_LAZY_FETCH": "1",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_PAGER": "cat",
        "LC_ALL": "C",
    }
    if git_dir is not None:
        env["GIT_DIR"] = git_dir
    if objects is not None:
        env["GIT_OBJECT_DIRECTORY"] = objects
    return env


def _git(git_dir: str | None, shown: str, *args: str, stdin: bytes | None = None, cwd: str | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", *_CONFIG, *args],
            env=git_env(git_dir),
            cwd=cwd or git_dir,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=STALL,
        )
    except FileNotFoundError as e:
        raise UsageError("reading a git clone needs the git command, which is not installed", shown) from e
    except subprocess.TimeoutExpired as e:
        raise SourceError(f"git {args[0]} took longer than {STALL:g} s", shown) from e
    if done.returncode != 0:
        raise SourceError(f"git {args[0]}: {_last_line(done.stderr)}", shown)
    return done.stdout


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


def _small(git_dir: str, name: str, limit: int = 1 << 20) -> bytes | None:
    """`.git/NAME`, a regular file (never through a link, never a FIFO), or
    None when it is absent."""
    from merkle.source.local import NotFound, read_capped

    if not os.path.lexists(os.path.join(git_dir, *name.split("/"))):
        return None
    try:
        return read_capped(name, limit, root=git_dir)
    except NotFound:
        return None


def _config(git_dir: str, shown: str) -> dict[str, list[str]]:
    """The clone's own config file, parsed by git from bytes read here (its
    `include`s are not followed): key -> values."""
    data = _small(git_dir, "config")
    if data is None:
        return {}
    out: dict[str, list[str]] = {}
    # git parses the bytes with no repository of its own (none is found at a path that cannot exist), so the
    # clone's config is never read as configuration.
    nowhere = "/nonexistent/merkle-no-repository"
    for item in _git(nowhere, shown, "config", "--file", "-", "--list", "-z", stdin=data, cwd="/").split(b"\0"):
        if item:
            key, _, value = item.decode("utf-8", "replace").partition("\n")
            out.setdefault(key, []).append(value)  # git lists section and name in lower case
    return out


_REF: Final = re.compile(r"(?!.*(?:\.\.|//|@\{|\.lock(?:/|$)|/\.))[^\0- ~^:?*\[\\\x7f]+")


def _ref_ok(name: str) -> bool:
    return bool(_REF.fullmatch(name)) and not name.startswith((".", "/")) and not name.endswith((".", "/"))


class _Refs:
    """The clone's refs, read here: loose files under `.git/refs` (no link
    followed) and `packed-refs`."""

    def __init__(self, git_dir: str, shown: str, hex_len: int) -> None:
        self.git_dir, self.shown, self.hex = git_dir, shown, re.compile(f"[0-9a-f]{{{hex_len}}}")
        packed = _small(git_dir, "packed-refs", 256 << 20) or b""
        self.packed: dict[str, str] = {}
        for line in packed.decode("utf-8", "replace").splitlines():
            oid, _, name = line.partition(" ")
            if self.hex.fullmatch(oid) and _ref_ok(name):
                self.packed[name] = oid

    def read(self, name: str, depth: int = 0) -> str | None:
        """The object id ref `name` names (symbolic refs followed, 5 deep)."""
        if depth > 5 or not (name == "HEAD" or (name.startswith("refs/") and _ref_ok(name))):
            return None
        try:
            data = _small(self.git_dir, name, 4096)
        except SourceError:  # a folder of that name (refs/heads/x/y exists), or unreadable
            data = None
        if data is None:
            return self.packed.get(name)
        text = data.decode("utf-8", "replace").strip()
        if text.startswith("ref: "):
            return self.read(text[5:].strip(), depth + 1)
        return text if self.hex.fullmatch(text) else None

    def symbolic(self, name: str) -> str | None:
        data = _small(self.git_dir, name, 4096)
        text = data.decode("utf-8", "replace").strip() if data else ""
        return text[5:].strip() if text.startswith("ref: ") else None

    def resolve(self, name: str) -> str | None:
        """`name` as `git rev-parse` looks it up among refs."""
        if name == "HEAD":
            return self.read("HEAD")
        for full in (name, f"refs/{name}", f"refs/tags/{name}", f"refs/heads/{name}", f"refs/remotes/{name}",
                     f"refs/remotes/{name}/HEAD"):  # fmt: skip
            if full.startswith("refs/"):
                got = self.read(full)
                if got is not None:
                    return got
        return None

    def tips(self, prefix: str) -> set[str]:
        """The ids every ref under `prefix` names (`refs/remotes/origin/`)."""
        from merkle.source.walk import walk

        found = {oid for name, oid in self.packed.items() if name.startswith(prefix)}
        folder = os.path.join(self.git_dir, *prefix.rstrip("/").split("/"))
        if os.path.isdir(folder) and not os.path.islink(folder):
            for f in walk(folder, ()).files:
                got = self.read(prefix + f.path)
                if got is not None:
                    found.add(got)
        return found


def open_repo(root: str, revision: str | None = None) -> GitRepo | None:
    """The clone at `root` checked against `revision` (a full commit id,
    pinned; any other name is looked up in the clone's refs, as git would),
    or against HEAD; None when `root` holds no `.git`.

    git never reads the clone's configuration: objects are read through a
    private, empty repository of the same object format whose object folder
    is the clone's, and refs and config are read here (the config parsed by
    git from bytes, includes not followed)."""
    import shutil
    import tempfile

    shown = root
    git_dir = git_dir_of(os.path.abspath(root))  # git runs in other folders: the clone by its absolute path
    if git_dir is None:
        return None
    if os.path.lexists(os.path.join(git_dir, "commondir")):
        raise SourceError("a .git/commondir: the repository's objects and refs are elsewhere; not checked", git_dir)
    objects = os.path.join(git_dir, "objects")
    if not os.path.isdir(objects) or os.path.islink(objects):
        raise SourceError("objects is not a folder of the clone (missing or a link): not checked", git_dir)
    if os.path.lexists(os.path.join(objects, "info", "alternates")):
        raise SourceError("objects/info/alternates: objects are read from another repository; not checked", git_dir)
    config = _config(git_dir, shown)
    object_format = (config.get("extensions.objectformat") or ["sha1"])[-1].lower()
    if object_format not in _HEX:
        raise SourceError(f"unknown object format {object_format!r}", git_dir)
    hex_len = _HEX[object_format]
    refs = _Refs(git_dir, shown, hex_len)
    head_ref = None
    pinned = revision is not None and re.fullmatch(f"[0-9a-f]{{{hex_len}}}", revision) is not None
    if pinned:
        assert revision is not None
        named: str | None = revision
    elif revision is not None:
        if not revision or revision.startswith("-") or any(c.isspace() or ord(c) < 32 for c in revision):
            raise UsageError(f"{option('revision')} {revision!r} is not a commit id or a ref name", shown)
        named = refs.resolve(revision)
        if named is None:
            raise SourceError(f"no ref {revision!r} here", root)
    else:
        named = refs.read("HEAD")
        if named is None:
            raise SourceError("HEAD names no commit (an empty clone?)", root)
        head_ref = refs.symbolic("HEAD")
    remote = "origin"
    if head_ref is not None and head_ref.startswith("refs/heads/"):
        remote = (config.get(f"branch.{head_ref[11:]}.remote") or ["origin"])[-1]
    urls = config.get(f"remote.{remote}.url")
    private = tempfile.mkdtemp(prefix="merkle-git-")
    try:
        _git(None, shown, "init", "-q", "--bare", f"--object-format={object_format}", private, cwd=private)
        with _Objects(private, objects, shown, object_format) as reader:
            assert named is not None
            commit = _peel(reader, named)
            repo = GitRepo(
                root,
                git_dir,
                object_format,
                commit,
                head_ref,
                pinned,
                os.path.exists(os.path.join(git_dir, "shallow")),
                public_url(urls[-1]) if urls else None,
                on_remote=commit in refs.tips(f"refs/remotes/{remote}/") if _ref_ok(remote) else False,
            )
            repo.entries = _list_commit(reader, commit)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return repo


def _peel(objects: _Objects, oid: str) -> str:
    """The commit `oid` names, through annotated tags."""
    for _ in range(10):
        ((kind, size, _),) = objects.ask([("info", oid)])
        if kind == "commit":
            return oid
        if kind != "tag" or size > MAX_SMALL:
            raise SourceError(f"{oid} is a {kind}, not a commit", objects.shown)
        ((_, _, body),) = objects.ask([("contents", oid)])
        m = re.match(rb"object ([0-9a-f]+)\ntype ", body or b"")
        if m is None:
            raise SourceError(f"tag {oid} names no object", objects.shown)
        oid = m.group(1).decode("ascii")
    raise SourceError(f"{oid}: tags nested more than 10 deep", objects.shown)


_HUB_HOSTS: Final = ("huggingface.co", "www.huggingface.co", "hf.co")
_HUB_PATH: Final = re.compile(r"/(?:(?P<type>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+?|[^/]+?)(?:\.git)?/?")


def hub_repo_of_url(url: str | None) -> tuple[str, str] | None:
    """(repo id, repo type) when `url` is a Hugging Face Hub repository's
    https URL, else None."""
    from merkle.format.origin import is_repo_id

    if url is None:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    if parts.scheme != "https" or host not in _HUB_HOSTS:
        return None
    m = _HUB_PATH.fullmatch(parts.path)
    if m is None or not is_repo_id(m["repo"]):
        return None
    return m["repo"], {"datasets": "dataset", "spaces": "space"}.get(m["type"] or "", "model")


def public_url(url: str) -> str | None:
    """`url` without what could be a secret: user name and password, query
    and fragment; None for a URL that is empty, has control characters or
    does not parse."""
    if not url or any(ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme and parts.netloc:
            host = parts.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            netloc = host + (f":{parts.port}" if parts.port is not None else "")
            return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return None
    m = re.match(r"([^/@]+)@([^/:]+:.*)", url)
    if m is not None:  # scp-like USER@HOST:PATH: the user of an ssh login is no secret, a password is
        user = m.group(1)
        return (url if ":" not in user else m.group(2)).split("?", 1)[0].split("#", 1)[0]
    return url.split("?", 1)[0].split("#", 1)[0]


class _Objects:
    """`git cat-file --batch-command` in the private repository over the
    clone's objects, each object checked against its id; git is stopped
    when it does not answer within STALL seconds (and a second per 1,000
    objects asked)."""

    def __init__(self, git_dir: str, objects: str, shown: str, object_format: str) -> None:
        self.shown = shown
        self.object_format = object_format
        self.raw_len = _HEX[object_format] // 2
        try:
            self.proc = subprocess.Popen(
                ["git", *_CONFIG, "cat-file", "--batch-command"],
                env=git_env(git_dir, objects),
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
        stalled = threading.Event()

        def stop() -> None:
            stalled.set()
            self.proc.kill()

        watchdog = threading.Timer(STALL + len(commands) / 1000, stop)
        watchdog.start()
        try:
            return self._replies(commands, stalled)
        finally:
            watchdog.cancel()
            writer.join(1)

    def _replies(
        self, commands: list[tuple[str, str]], stalled: threading.Event
    ) -> list[tuple[str, int, bytes | None]]:
        assert self.proc.stdout is not None
        out: list[tuple[str, int, bytes | None]] = []
        read = self.proc.stdout
        for verb, oid in commands:
            header = read.readline(1024)
            parts = header.decode("ascii", "replace").split()
            if len(parts) == 2 and parts[1] == "missing":
                raise SourceError(f"object {oid} is missing (a damaged or shallow clone?)", self.shown)
            if stalled.is_set():
                raise SourceError(f"git did not answer within {STALL:g} s (reading object {oid})", self.shown)
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
        return out


def _list_commit(objects: _Objects, commit: str) -> dict[str, GitEntry]:
    """The commit's files, every tree read after its type and size were
    asked (a tiny `.git` can name a huge object), each checked against its
    id; a blob is an LFS file when it is a git-lfs pointer and the commit's
    own `.gitattributes` gives its path `filter=lfs`, as git-lfs decides."""
    content = _read_small(objects, commit, "commit")
    m = re.match(rb"tree ([0-9a-f]+)\n", content)
    if m is None:
        raise SourceError(f"commit {commit} names no tree", objects.shown)
    files: list[tuple[str, str, str]] = []  # (path, mode, blob id)
    level = [("", m.group(1).decode("ascii"))]
    parsed: dict[str, list[tuple[str, str, str]]] = {}
    count = 0
    while level:  # one level of folders at a time: one round trip each
        wanted = sorted({oid for _, oid in level if oid not in parsed})
        for oid, (kind, size, _) in zip(wanted, objects.ask([("info", o) for o in wanted]), strict=True):
            if kind != "tree":
                raise SourceError(f"object {oid} is a {kind} where a tree is named", objects.shown)
            if size > MAX_TREE_BYTES:
                raise SourceError(f"tree {oid} is larger than {MAX_TREE_BYTES >> 20} MiB", objects.shown)
        for oid, (_, _, body) in zip(wanted, objects.ask([("contents", o) for o in wanted]), strict=True):
            parsed[oid] = _parse_tree(body or b"", objects.raw_len, oid, objects.shown)
        below = []
        for prefix, oid in level:
            count += len(parsed[oid])
            if count > MAX_ENTRIES:
                raise SourceError(f"the commit lists more than {MAX_ENTRIES:,} entries", objects.shown)
            for mode, name, child in parsed[oid]:
                path = prefix + name
                if mode == "40000":
                    below.append((path + "/", child))
                else:
                    files.append((path, mode, child))
        level = below
    blobs = sorted({oid for _, mode, oid in files if mode != "160000"})
    sizes = {oid: size for oid, (_, size, _) in zip(blobs, objects.ask([("info", o) for o in blobs]), strict=True)}
    rules = _lfs_rules(objects, dict((p, o) for p, mode, o in files if mode != "160000").get(".gitattributes"))
    small = [oid for oid in blobs if sizes[oid] < MAX_POINTER_SIZE] if rules else []
    pointers = {}
    for oid, (_, _, body) in zip(small, objects.ask([("contents", o) for o in small]), strict=True):
        parsed_pointer = parse_lfs_pointer(body or b"")
        if parsed_pointer is not None:
            pointers[oid] = parsed_pointer
    out = {}
    for path, mode, oid in files:
        lfs = pointers.get(oid) if mode in ("100644", "100755") and _is_lfs(path, rules) else None
        out[path] = GitEntry(path, mode, oid, sizes.get(oid, 0), lfs)
    return out


def _read_small(objects: _Objects, oid: str, kind: str) -> bytes:
    ((got, size, _),) = objects.ask([("info", oid)])
    if got != kind:
        raise SourceError(f"{oid} is a {got}, not a {kind}", objects.shown)
    if size > MAX_SMALL:
        raise SourceError(f"{kind} {oid} is larger than {MAX_SMALL >> 20} MiB", objects.shown)
    ((_, _, body),) = objects.ask([("contents", oid)])
    return body or b""


def _lfs_rules(objects: _Objects, attributes: str | None) -> list[tuple[str, bool]]:
    """(pattern, is LFS) of each line of the commit's top `.gitattributes`
    that sets or unsets `filter`, in order (the last match decides)."""
    if attributes is None:
        return []
    text = _read_small(objects, attributes, "blob").decode("utf-8", "replace")
    rules = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        for attr in parts[1:]:
            if attr == "filter=lfs":
                rules.append((parts[0], True))
            elif attr.startswith(("filter=", "-filter", "!filter")):
                rules.append((parts[0], False))
    return rules


def _is_lfs(path: str, rules: list[tuple[str, bool]]) -> bool:
    import fnmatch

    verdict = False
    for pattern, lfs in rules:
        anchored = pattern.strip("/")
        target = path if "/" in anchored else path.rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(target, anchored.replace("**/", "*").replace("/**", "/*")):
            verdict = lfs
    return verdict


_ENTRY: Final = re.compile(rb"(\d{5,6}) ([^\0]+)\0")


def _parse_tree(body: bytes, raw_len: int, oid: str, shown: str) -> list[tuple[str, str, str]]:
    """(mode, name, id) of each entry of a tree object, strictly."""
    out = []
    seen: set[str] = set()
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
        if name in seen:
            raise SourceError(f"tree {oid} lists {name[:80]!r} twice", shown)
        seen.add(name)
        out.append((mode, name, child))
        pos = m.end() + raw_len
    return out
