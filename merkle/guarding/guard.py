"""`merkle.guard`: verify a signed tree, then hand a loader only the bytes
that verified (docs/deploy.md, "In-process: merkle.guard").

The steps, in order; nothing is handed out unless all pass:
1. The bundles are opened through the one trust path
   (merkle.verifying.signed.open_signed: signatures, policy, expiry,
   rollback against the attestation store), as `merkle verify` opens them.
2. The statement must be a merkle manifest for the subject the caller
   names (`name`), at `min_version` or later when given: a valid bundle of
   another model, or an older release, is refused here.
3. The tree is listed by merkle's walker (closed world: an extra file
   fails unless `allow_extra`; with `only`, just those files are checked).
4. Every signed file is opened once, below the root and never through a
   link, and hashed from that open file or a sealed copy of it
   (merkle.guarding.holding); any failure raises (Report.raise_for_failure)
   and closes everything.
5. The loader gets names of, or readers over, the held files only.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from merkle.errors import IntegrityError, SourceError, UnsupportedError, UsageError, option
from merkle.format.manifest import MANIFEST_SUFFIX, FileEntry, Manifest
from merkle.format.paths import check_path
from merkle.guarding.holding import Held, Mode, hold
from merkle.report import Outcome, Report, Status
from merkle.signing.attestations import StoreChoice, as_store
from merkle.signing.statements import Verified
from merkle.signing.trust import TrustPolicy
from merkle.source.layouts import LayoutOptions, choose_layout
from merkle.source.listing import WalkOptions, list_source
from merkle.source.readers import LocalFile
from merkle.source.walk import Excluder
from merkle.verifying.ranges import FileAuth
from merkle.verifying.reader import VerifiedReader
from merkle.verifying.signed import chosen_policy, open_signed, read_bundles

if TYPE_CHECKING:
    from safetensors import safe_open

HEADROOM = 64
"""Descriptors left free for the loader: a guard holds one per file."""


class Guard:
    """Files of a signed tree that verified, held open for loaders (made by
    `guard`).  `verified` is the trusted statement, `report` the check of
    the files; `names` what can be handed out.  Use it as a context
    manager: closing it closes every held file and removes `directory()`."""

    def __init__(self, verified: Verified, manifest: Manifest, report: Report, held: dict[str, Held], mode: Mode):
        self.verified = verified
        self.report = report
        self.mode: Mode = mode
        self._manifest = manifest
        self._held = held
        self._directory: str | None = None
        self._closed = False

    @property
    def names(self) -> tuple[str, ...]:
        """The signed paths this guard verified and can hand out, sorted."""
        return tuple(sorted(self._held))

    def path(self, name: str) -> str:
        """A path that opens the verified file `name` (`/proc/self/fd/N`, in
        this process only), for loaders that take a path:
        `safetensors.numpy.load_file(g.path("model.safetensors"))`.  Opening
        it reaches the held file, never a name in the model folder."""
        return self._get(name).proc

    def open(self, name: str) -> io.BufferedReader:
        """A new read-only binary file over the verified file `name`, with its
        own position.  Sealed: a plain reader of the sealed copy.  Pinned: a
        merkle.open reader that checks every chunk against the signed tree
        as it reads (ChunkError if the file was written since)."""
        held = self._get(name)
        fd = os.open(held.proc, os.O_RDONLY | os.O_CLOEXEC)  # a new open file description: its own offset
        if held.sealed:
            return open(fd, "rb", closefd=True)  # noqa: SIM115 - the caller closes it
        try:
            auth = FileAuth.of(self._manifest, name)
        except BaseException:
            os.close(fd)
            raise
        raw = VerifiedReader(LocalFile(name, (fd, os.fstat(fd))), auth)
        return io.BufferedReader(raw, buffer_size=max(io.DEFAULT_BUFFER_SIZE, min(auth.chunk_size, 1 << 20)))

    def safetensors(self, name: str, framework: str = "np", **kwargs: Any) -> safe_open:
        """`safetensors.safe_open` over the verified file `name` (its
        `get_tensor`, `keys`, `metadata`...; a context manager)."""
        try:
            from safetensors import safe_open
        except ImportError as e:
            raise UsageError("reading safetensors files needs safetensors: pip install safetensors") from e
        return safe_open(self.path(name), framework=framework, **kwargs)

    def tensors(self, name: str) -> dict[str, Any]:
        """Every tensor of the safetensors file `name` as a read-only numpy
        array over the sealed copy itself: no second copy of the weights
        (the arrays keep the sealed memory alive after the guard closes).
        Sealed mode only: a pinned file's mapping would show later writes."""
        held = self._get(name)
        if not held.sealed:
            raise UsageError(f"arrays over the held bytes need {option('mode')} 'sealed' (a pinned file can change)")
        try:
            import numpy as np
        except ImportError as e:
            raise UsageError("tensors() needs numpy: pip install numpy") from e
        from merkle.guarding.tensors import arrays

        return arrays(held, np)

    def directory(self) -> str:
        """A private directory (mode 0700, removed when the guard closes)
        holding every verified file at its signed path, as a link to the
        held file: for loaders that take a directory.  In this process only;
        a loader that resolves links (os.path.realpath) and opens the result
        reaches the model folder's name (pinned) or nothing (sealed)."""
        self._check_open()
        if self._directory is None:
            top = tempfile.mkdtemp(prefix="merkle-guard-")
            try:
                for name, held in sorted(self._held.items()):
                    target = os.path.join(top, *name.split("/"))
                    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                    os.symlink(held.proc, target)
            except BaseException:
                shutil.rmtree(top, ignore_errors=True)
                raise
            self._directory = top
        for name in self._held:
            self._get(name)  # pinned: every file is checked as it is handed out
        return self._directory

    def check(self) -> None:
        """IntegrityError if a pinned file was written since it verified (its
        size, mtime or ctime moved); sealed files cannot change."""
        self._check_open()
        _refuse_changed([h.path for h in self._held.values() if h.changed()])

    def close(self) -> None:
        """Give the held files back; in pinned mode, first check that none
        was written while held (IntegrityError after everything is given
        back, as `check`)."""
        if self._closed:
            return
        try:
            changed = [h.path for h in self._held.values() if h.changed()]
        finally:
            self._release()
        _refuse_changed(changed)

    def _release(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
        for held in self._held.values():
            os.close(held.fd)

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if error is None:
            self.close()  # a pinned file written while the loader read it: the with-block's work is suspect
        else:
            self._release()

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the guard is closed: its files are no longer held")

    def _get(self, name: str) -> Held:
        self._check_open()
        check_path(name)  # PathError for '..', absolute paths, NUL, empty parts...
        held = self._held.get(name)
        if held is None:
            if self._manifest.entry(name) is None:
                raise IntegrityError("not signed: the bundle does not list it", name)
            raise UsageError(f"signed, but not verified by this guard (it was left out of {option('only')})", name)
        if held.changed():
            raise IntegrityError("written since it verified (pinned mode: size, mtime or ctime moved)", name)
        return held


def _refuse_changed(changed: list[str]) -> None:
    if changed:
        raise IntegrityError(
            f"{len(changed)} file(s) written since they verified: what a loader read of them may not be what was "
            "signed",
            changed[0],
        )


def guard(
    path: str | os.PathLike[str],
    bundles: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    name: str,
    keys: Sequence[str | os.PathLike[str]] = (),
    cas: Sequence[str | os.PathLike[str]] = (),
    policy: TrustPolicy | None = None,
    mode: Mode = "sealed",
    min_version: int | None = None,
    only: Sequence[str] | None = None,
    allow_extra: bool = False,
    exclude: Sequence[str] = (),
    attestations: StoreChoice = True,
    jobs: int | None = None,
) -> Guard:
    """Verify the tree at `path` against signed `bundles` and hold its files
    for loaders; raises before anything is held when anything fails
    (SignatureError, BundleError, PolicyError, IntegrityError: exit 1;
    SourceError when only reads failed; UsageError).

    `name` is the subject the statement must be for (the `--name` it was
    signed with): a valid bundle of another model is refused.  `min_version`
    refuses statements older than it (or without a version), where the
    attestation store cannot (a fresh container).  `keys`, `cas`, `policy`
    and `attestations` as `merkle.verify_signed`.  `mode`: "sealed" (each
    file copied into sealed memory, then hashed: the loader reads bytes
    nothing can change) or "pinned" (each file hashed and read through one
    open file, no copy: a write into it is detected, not prevented).
    `only`: hold just these signed files (no extras check, as verify's
    `only`); `allow_extra` and `exclude` as `merkle.verify`'s."""
    started = time.perf_counter()
    chosen = chosen_policy(keys, cas, policy, name, min_version)
    if chosen is None:
        raise UsageError("a signed bundle needs keys=, cas= or policy= to be trusted")
    paths = [bundles] if isinstance(bundles, (str, os.PathLike)) else list(bundles)
    # 1. The one trust path.
    verified = open_signed(read_bundles(paths), chosen, as_store(attestations))
    # 2. This model, this release: checked on the trust path (TrustPolicy.subjects, .min_version).
    manifest = _manifest_of(verified, os.fspath(paths[0]))
    root = os.fspath(path)
    try:  # the root opened once: the listing and the files held are of one folder, whatever is renamed meanwhile
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise SourceError(f"not a readable directory: {e.strerror or e}", root) from e
    try:
        pinned = f"/proc/self/fd/{root_fd}"
        entries, outcomes = _listed(pinned, manifest, only, allow_extra, tuple(exclude))
        if len(entries) > _free_descriptors():
            raise UsageError(
                f"{len(entries)} files to hold, more than free descriptors: hold fewer with {option('only')}"
            )
        # 4. Open once, hash what is held.
        held, checked, hashed = hold(pinned, entries, manifest, mode, jobs, shown_root=root)
    finally:
        os.close(root_fd)
    report = Report(
        manifest.root,
        manifest.algorithm,
        tuple(sorted(outcomes + checked, key=lambda o: o.path)),
        allow_extra,
        hashed,
        time.perf_counter() - started,
    )
    if not report:
        for h in held.values():
            os.close(h.fd)
        report.raise_for_failure()
    return Guard(verified, manifest, report, held, mode)


def _manifest_of(verified: Verified, bundle: str) -> Manifest:
    if verified.manifest is not None:
        return verified.manifest
    if verified.summary is not None:
        raise UsageError(f"a compact bundle needs its manifest beside it ({bundle}{MANIFEST_SUFFIX})", bundle)
    raise UnsupportedError("guard needs a merkle bundle (OpenSSF bundles carry no chunk tree)", bundle)


def _listed(
    root: str, manifest: Manifest, only: Sequence[str] | None, allow_extra: bool, exclude: tuple[str, ...]
) -> tuple[list[FileEntry], list[Outcome]]:
    """3. The entries to hold, and the outcomes of files the walk found that
    the manifest does not list (none with `only`)."""
    if only is not None:
        entries = []
        for wanted in dict.fromkeys(only):
            entry = manifest.entry(check_path(wanted))
            if entry is None:
                raise IntegrityError("not signed: the bundle does not list it", wanted)
            entries.append(entry)
        return entries, []
    layout = choose_layout(root, manifest.origin)
    if layout not in ("plain", "hf-local-dir"):
        raise UnsupportedError(f"guard reads a plain tree or a local_dir, not a {layout} layout", root)
    listing = list_source(root, manifest.exclude, WalkOptions(), LayoutOptions(layout, bookkeeping=False))
    hidden = Excluder(exclude)
    outcomes = [
        Outcome(f.path, Status.EXTRA)
        for f in listing.files
        if manifest.entry(f.path) is None and not hidden.covers(f.path)
    ]
    for problem in listing.problems:
        if manifest.entry(problem.path) is not None:
            continue  # a signed path: opening it below reports what is wrong there
        if problem.unreadable_dir or problem.unmapped:
            outcomes.append(Outcome(problem.path, Status.ERROR, problem.reason))
        elif not hidden.covers(problem.path):
            outcomes.append(Outcome(problem.path, Status.EXTRA, problem.reason))
    return list(manifest.files), outcomes


def _free_descriptors() -> int:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = 0
    return max(0, soft - used - HEADROOM)
