"""`merkle hf verify`: every present file against the Hub's own identity,
offline (docs/hf.md, rules HF6-HF9).

Per file, the expected identity comes from the revision's tree listing when
the checkout keeps one, else from the blob name (cache) or the download
metadata (local_dir); the layout's own claims are cross-checked against the
listing without reading content.  Content is hashed in parallel, in chunks,
largest files first, through the engine's page-aligned buffers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from merkle.errors import IntegrityError, MerkleError, SourceError, UsageError, install_hint, option
from merkle.format.hub import GIT_BLOB, GIT_BLOB_SHA256, MAX_POINTER_SIZE, SHA256, HubId, new_hasher, parse_lfs_pointer
from merkle.hashing.engine import FileDigest, digest_files
from merkle.hf.layout import Checkout, HfFile, hub_id_of_etag, open_checkout
from merkle.report import Outcome, Progress, Report, Status
from merkle.source.layouts import LayoutOptions
from merkle.source.walk import WalkedFile, blocked_by

_KIND_NAMES = {SHA256: "sha256", GIT_BLOB: "git blob id", GIT_BLOB_SHA256: "git blob id (sha256)"}


@dataclass(frozen=True)
class HubReport(Report):
    """A Report whose files were checked against Hub identities; `checkout`
    says what was found on disk."""

    checkout: Checkout | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        del out["root"]
        co = self.checkout
        if co is not None:
            out["checkout"] = {
                "kind": co.kind,
                "repo": co.repo,
                "repo_type": co.repo_type,
                "revision": co.revision,
                "tree_listing": co.tree is not None,
            }
        return out


def verify_checkout(
    path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    require_all: bool = False,
    xet: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> HubReport:
    """Check a cache repo folder, a snapshot or a local_dir checkout against
    the Hub identities it records.  Files the revision lists but that are not
    downloaded are ABSENT (MISSING with `require_all`); unfinished downloads
    are PARTIAL; git-lfs pointer files count as not downloaded.  With `xet`,
    files the tree listing gives a Xet hash are also checked with hf_xet."""
    started = time.perf_counter()
    name = os.fspath(path)
    checkout = open_checkout(name, LayoutOptions(revision=revision), clones=True)
    if checkout is None:
        raise UsageError("not a Hugging Face cache folder, snapshot or local_dir checkout", name)
    if xet:
        _hf_xet()
    absent = Status.MISSING if require_all else Status.ABSENT
    outcomes: list[Outcome] = [Outcome(p.path, Status.ERROR, p.reason) for p in checkout.problems]
    to_hash: list[tuple[HfFile, HubId, str]] = []
    for f in checkout.files:
        outcome = _precheck(checkout, f, absent)
        if isinstance(outcome, Outcome):
            outcomes.append(outcome)
        else:
            to_hash.append((f, *outcome))
    outcomes += _not_present(checkout, absent)

    to_hash.sort(key=lambda item: -item[0].walked.size)  # largest first: the long hashes start early
    kinds = {f.path: hub[0] for f, hub, _ in to_hash}
    digests = digest_files(
        [f.walked for f, _, _ in to_hash], lambda src: new_hasher(kinds[src.path], src.size), jobs, progress
    )
    passed: list[HfFile] = []
    for (f, hub, source), d in zip(to_hash, digests, strict=True):
        outcome = _judge(f, hub, source, d, absent)
        outcomes.append(outcome)
        if outcome.status is Status.OK:
            passed.append(f)
    if xet:
        outcomes = _check_xet(checkout, passed, outcomes)
    outcomes.sort(key=lambda o: o.path)
    return HubReport(
        b"",
        "hub",
        tuple(outcomes),
        bytes_hashed=sum(f.walked.size for f, _, _ in to_hash),
        seconds=time.perf_counter() - started,
        checkout=checkout,
    )


def _precheck(checkout: Checkout, f: HfFile, absent: Status) -> Outcome | tuple[HubId, str]:
    """What `f` must hash to and who says so, or an outcome decided without
    reading its content."""
    if f.path in checkout.bad_metadata:
        return Outcome(f.path, Status.ERROR, checkout.bad_metadata[f.path])
    claimed = hub_id_of_etag(f.etag) if f.etag is not None else None
    where = "its blob name" if checkout.kind == "cache" else "its download metadata"
    if f.etag is not None and claimed is None:
        return Outcome(f.path, Status.ERROR, f"blob name {f.etag[:80]!r} is not a content address")
    if checkout.tree is None:
        if claimed is None:
            detail = (
                "no tree listing or download metadata names it"
                if checkout.kind == "local_dir"
                else "not a link to a blob, and no tree listing to check it against"
            )
            return Outcome(f.path, Status.EXTRA if checkout.kind == "local_dir" else Status.ERROR, detail)
        return claimed, where
    entry = checkout.tree.get(f.path)
    if entry is None:
        git = checkout.kind == "git"
        where = f"{checkout.listing} (untracked)" if git else f"the tree listing of {checkout.revision}"
        return Outcome(f.path, Status.EXTRA, f"not in {where}")
    problem = entry.inconsistency()
    if problem:
        return Outcome(f.path, Status.ERROR, problem)
    if claimed is not None and claimed != entry.hub_id and f.revision not in (None, checkout.revision):
        return Outcome(
            f.path,
            Status.MISMATCH,
            f"downloaded at revision {f.revision}, which has other content than {checkout.revision}",
        )
    if claimed is not None and claimed != entry.hub_id:
        return Outcome(
            f.path,
            Status.MISMATCH,
            f"{where} says {_KIND_NAMES[claimed[0]]} {claimed[1]}, "
            f"the tree listing {_KIND_NAMES[entry.hub_id[0]]} {entry.hub_id[1]}",
        )
    if f.walked.size != entry.size:
        pointer = _pointer(f, entry.hub_id, entry.size)
        if pointer is not None:
            return Outcome(
                f.path,
                absent if pointer else Status.MISMATCH,
                "git-lfs pointer: content not downloaded" if pointer else "git-lfs pointer to other content",
            )
        return Outcome(f.path, Status.MISMATCH, f"size {f.walked.size}, {checkout.listing} says {entry.size}")
    return entry.hub_id, checkout.listing


def _pointer(f: HfFile, hub: HubId, size: int | None) -> bool | None:
    """For a file that does not match: True when it is the git-lfs pointer
    of exactly the expected content, False for a pointer to other content,
    None when it is no pointer at all."""
    if hub[0] != SHA256 or f.walked.size >= MAX_POINTER_SIZE:
        return None
    parsed = read_pointer(f.walked)
    if parsed is None:
        return None
    return parsed[0] == hub[1] and (size is None or parsed[1] == size)


def read_pointer(f: WalkedFile) -> tuple[str, int] | None:
    """The git-lfs pointer a listed file holds (opened down from its root,
    never through a link), or None."""
    return parse_lfs_pointer(f.head(MAX_POINTER_SIZE) or b"")


def _judge(f: HfFile, hub: HubId, source: str, d: FileDigest, absent: Status) -> Outcome:
    if d.error is not None:
        return Outcome(f.path, Status.ERROR, d.error.message)
    got = d.root.hex()
    if got == hub[1]:
        return Outcome(f.path, Status.OK)
    pointer = _pointer(f, hub, None)
    if pointer:
        return Outcome(f.path, absent, "git-lfs pointer: content not downloaded")
    if pointer is False:
        return Outcome(f.path, Status.MISMATCH, "git-lfs pointer to other content")
    return Outcome(f.path, Status.MISMATCH, f"content {_KIND_NAMES[hub[0]]} {got}, {source} says {hub[1]}")


def _not_present(checkout: Checkout, absent: Status) -> list[Outcome]:
    """Files the revision has that are not on disk: unfinished, broken or
    simply not downloaded."""
    out = [
        Outcome(path, Status.ERROR, f"broken link: blobs/{blob} does not exist")
        for path, blob in checkout.broken.items()
    ]
    seen = set(checkout.broken) | {f.path for f in checkout.files} | {p.path for p in checkout.problems}
    for p in checkout.partials:
        if p.path not in seen:
            out.append(Outcome(p.path, Status.PARTIAL, _partial_detail(p.have, p.size, p.location)))
            seen.add(p.path)
    expected = set(checkout.known)
    if checkout.tree is not None:
        expected |= checkout.tree.keys()
    problems = {p.path: p for p in checkout.problems}
    for path in sorted(expected - seen):
        parent = blocked_by(path, problems)  # behind a refused link or a special file: unknown, never absent
        out.append(
            Outcome(path, Status.ERROR, f"{parent.path}: {parent.reason}")
            if parent is not None
            else Outcome(path, Status.MISSING, f"in {checkout.listing}, not in the work tree")
            if checkout.kind == "git"  # a clone checks out every file: one that is gone was removed
            else Outcome(path, absent, "not downloaded")
        )
    return out


def _partial_detail(have: int, size: int | None, location: str) -> str:
    of = f" of {size}" if size is not None else ""
    return f"unfinished download: {have}{of} bytes in {location}"


def _hf_xet() -> Any:
    try:
        import hf_xet
    except ImportError as e:
        raise UsageError(f"{option('xet')} needs hf_xet: {install_hint('hf')}") from e
    return hf_xet


XET_BATCH = 256
"""Files handed to hf_xet at once, each through an open descriptor."""


def _xet_hashes(files: list[WalkedFile]) -> list[Any]:
    """hf_xet opens the paths it is given: hand it each file's descriptor,
    opened down from its root and never through a link, as /proc/self/fd/N
    (where there is no /proc, the listed path).  A file that cannot be
    opened gets its SourceError in place of a result."""
    proc = os.path.isdir("/proc/self/fd")
    opened: dict[int, int] = {}
    out: list[Any] = []
    try:
        for i, f in enumerate(files):
            try:
                opened[i] = f.open()[0]
                out.append(None)
            except SourceError as e:
                out.append(e)
        paths = [f"/proc/self/fd/{fd}" if proc else files[i].abspath for i, fd in opened.items()]
        for i, info in zip(opened, _hf_xet().hash_files(paths) if paths else [], strict=True):
            out[i] = info
        return out
    finally:
        for fd in opened.values():
            os.close(fd)


def _check_xet(checkout: Checkout, passed: list[HfFile], outcomes: list[Outcome]) -> list[Outcome]:
    """Recompute the Xet hash of every passed file the listing gives one for."""
    tree = checkout.tree or {}
    todo = [f for f in passed if f.path in tree and tree[f.path].xet_hash]
    if not todo:
        return outcomes
    results: list[Any] = []
    try:
        for start in range(0, len(todo), XET_BATCH):
            results += _xet_hashes([f.walked for f in todo[start : start + XET_BATCH]])
    except Exception as e:  # hf_xet raises its own types; a read error here is not a verdict
        failed = {f.path: Outcome(f.path, Status.ERROR, f"hf_xet could not hash the batch: {e}") for f in todo}
        return [failed.get(o.path, o) for o in outcomes]
    wrong = {}
    for f, info in zip(todo, results, strict=True):
        if isinstance(info, SourceError):
            wrong[f.path] = Outcome(f.path, Status.ERROR, info.message)
            continue
        want = tree[f.path].xet_hash
        if info.hash != want:
            detail = f"content xet hash {info.hash}, the tree listing says {want}"
            wrong[f.path] = Outcome(f.path, Status.MISMATCH, detail)
    return [wrong.get(o.path, o) for o in outcomes]


def hub_identities(checkout: Checkout, jobs: int | None = None, progress: Progress | None = None) -> dict[str, HubId]:
    """Every present file's Hub identity, recomputed from its content and
    required to equal what the checkout claims for it (a signed manifest
    vouches only for identities checked this way).  IntegrityError names the
    first file that does not match; files the Hub does not name get none."""
    return _identities(checkout, False, jobs, progress)[0]


def clone_identities(
    checkout: Checkout, jobs: int | None = None, progress: Progress | None = None
) -> tuple[dict[str, HubId], bool]:
    """A git clone's files' identities, recomputed from content (as
    `hub_identities`), for the files that match the commit, and whether the
    work tree differs from it (dirty: a file changed, added or removed).
    A git-lfs pointer where the commit has the content is refused
    (IntegrityError): the pointer is not the file."""
    return _identities(checkout, True, jobs, progress)


def _identities(
    checkout: Checkout, tolerant: bool, jobs: int | None, progress: Progress | None
) -> tuple[dict[str, HubId], bool]:
    """(identities of the files that match, whether any file differs): with
    `tolerant`, a file that differs, is extra or is gone is counted, not
    refused; a pointer where content should be, or an error, always is."""
    present = {f.path for f in checkout.files}
    differs = bool(tolerant and checkout.tree is not None and set(checkout.tree) - present)

    def refused(outcome: Outcome) -> bool:
        return not tolerant or outcome.status is Status.MISSING or outcome.status is Status.ERROR

    todo = []
    for f in checkout.files:
        outcome = _precheck(checkout, f, Status.MISSING)
        if isinstance(outcome, Outcome):
            if outcome.status is Status.EXTRA and checkout.kind == "local_dir":
                continue  # a file of the user's, not of the repository: signed without a Hub identity
            if refused(outcome):
                raise _refusal(outcome)
            differs = True
            continue
        todo.append((f, *outcome))
    todo.sort(key=lambda item: -item[0].walked.size)  # largest first: the long hashes start early
    kinds = {f.path: hub[0] for f, hub, _ in todo}
    digests = digest_files(
        [f.walked for f, _, _ in todo], lambda src: new_hasher(kinds[src.path], src.size), jobs, progress
    )
    found: dict[str, HubId] = {}
    for (f, hub, source), d in zip(todo, digests, strict=True):
        outcome = _judge(f, hub, source, d, Status.MISSING)
        if outcome.status is Status.OK:
            found[f.path] = hub
        elif refused(outcome):
            raise _refusal(outcome)
        else:
            differs = True
    return found, differs


def _refusal(outcome: Outcome) -> MerkleError:
    what = "does not match its Hub identity" if outcome.status is Status.MISMATCH else outcome.status.label
    error: type[MerkleError] = SourceError if outcome.status is Status.ERROR else IntegrityError
    return error(f"{what}: {outcome.detail} (see merkle hf verify)", outcome.path)
