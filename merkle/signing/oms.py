"""OpenSSF model-signing (OMS v1.0) statements: read theirs, write ours.

Facts (docs/signing.md, rules O1-O5): predicateType
`https://model_signing/signature/v1.0`; predicate `{resources: [{name,
digest, algorithm}], serialization: {method: "files", hash_type: "sha256",
allow_symlinks, ignore_paths}}`; one subject named after the model
directory whose `sha256` digest is SHA-256 over the raw resource digests in
listed order; whole-file SHA-256 per resource.  model-signing rejects extra
and missing files and skips `ignore_paths` (relative to the model root).
"""

from __future__ import annotations

import glob
import hashlib
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from merkle.errors import BundleError, SourceError, UsageError, option
from merkle.format.paths import path_problem
from merkle.hashing.engine import FileDigest, digest_files
from merkle.report import Outcome, Progress, Report, Status
from merkle.signing.envelope import Statement
from merkle.source.layouts import LayoutOptions, choose_layout
from merkle.source.listing import list_source
from merkle.source.walk import Excluder, WalkedFile, blocked_by, identity

PREDICATE_TYPE: Final = "https://model_signing/signature/v1.0"
LEGACY_NAME: Final = "(model-signing 0.2: no model name)"
SINGLE_FILE: Final = "."
"""The resource name model-signing 1.1.1 gives the one file of a model that
is a file (OMS 6.1.2 says its basename, which 1.1.1 fails to verify): merkle
writes it and accepts both (rule O6)."""
DEFAULT_IGNORES: Final = (".git", ".gitignore", ".gitattributes", ".github")
_SERIALIZATION_KEYS: Final = {"method", "hash_type", "allow_symlinks", "ignore_paths"}


@dataclass(frozen=True)
class OmsStatement:
    name: str
    resources: tuple[tuple[str, bytes], ...]
    ignore_paths: tuple[str, ...] = DEFAULT_IGNORES
    allow_symlinks: bool = False
    legacy: bool = False
    """model-signing 0.2's statement: it names no model (`name` is LEGACY_NAME)."""

    @property
    def subject_digest(self) -> bytes:
        return hashlib.sha256(b"".join(d for _, d in self.resources)).digest()

    def to_statement(self) -> Statement:
        predicate = {
            "resources": [{"algorithm": "sha256", "name": n, "digest": d.hex()} for n, d in self.resources],
            "serialization": {
                "ignore_paths": list(self.ignore_paths),
                "hash_type": "sha256",
                "allow_symlinks": self.allow_symlinks,
                "method": "files",
            },
        }
        return Statement(((self.name, {"sha256": self.subject_digest.hex()}),), PREDICATE_TYPE, predicate)

    @classmethod
    def from_statement(cls, stmt: Statement) -> OmsStatement:
        if len(stmt.subjects) != 1:
            raise BundleError("an OMS statement has exactly one subject")
        name, digests = stmt.subjects[0]
        pred = stmt.predicate
        if set(pred) != {"resources", "serialization"}:
            raise BundleError("OMS predicate must have exactly resources and serialization")
        ser = pred["serialization"]
        if not isinstance(ser, dict) or not {"method", "hash_type"} <= set(ser) <= _SERIALIZATION_KEYS:
            raise BundleError("OMS serialization has unexpected keys")
        if ser["method"] != "files" or ser["hash_type"] != "sha256":
            raise BundleError(
                f"OMS serialization {ser['method']!r}/{ser['hash_type']!r} is not supported (files/sha256 only)"
            )
        ignore = ser.get("ignore_paths", [])  # absent in bundles of model-signing before 1.1 (OMS 11.1)
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise BundleError("OMS ignore_paths must be a list of strings")
        ignore = [q for q in map(_recorded_ignore, ignore) if q is not None]
        allow_symlinks = ser.get("allow_symlinks", False)
        if not isinstance(allow_symlinks, bool):
            raise BundleError("OMS allow_symlinks is not a boolean")
        resources = _resources(pred["resources"])
        if not resources:
            raise BundleError("OMS statement signs no file: an empty model must be rejected (OMS 6.1)")
        parsed = cls(name, resources, tuple(ignore), allow_symlinks)
        if digests.get("sha256") != parsed.subject_digest.hex():
            raise BundleError("OMS subject digest does not match its resources")
        return parsed

    @classmethod
    def from_legacy_statement(cls, stmt: Statement) -> OmsStatement:
        """model-signing 0.2's statement (OMS 11: predicate type
        https://model_signing/Digests/v0.1): each file a subject with its
        SHA-256, no model name, no serialization, no ignore paths (so only the
        default ones apply), no root digest (rule O11)."""
        raw = [{"name": n, "digest": d.get("sha256"), "algorithm": "sha256"} for n, d in stmt.subjects]
        return cls(LEGACY_NAME, _resources(raw), (), legacy=True)


def _recorded_ignore(path: str) -> str | None:
    """A recorded ignore path as model_signing applies it (joined to the
    model root, compared component by component): `./a`, `a//b` and `a/`
    name `a` and `a/b`; one that cannot name anything under the root (`..`,
    absolute, empty, or written relative to another implementation's working
    directory and so absent) matches nothing, as there (rule O10)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or not parts or ".." in parts:
        return None
    joined = "/".join(parts)
    return None if path_problem(joined) else joined


def _resources(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if not isinstance(raw, list):
        raise BundleError("OMS resources is not a list")
    out = []
    seen = set()
    for i, r in enumerate(raw):
        if not isinstance(r, dict) or set(r) != {"name", "digest", "algorithm"}:
            raise BundleError(f"resources[{i}] must have exactly name, digest, algorithm")
        name, digest = r["name"], r["digest"]
        if r["algorithm"] != "sha256":
            raise BundleError(f"resources[{i}]: algorithm {r['algorithm']!r} is not allowed (sha256 only)")
        if not isinstance(name, str) or (path_problem(name) and not (name == SINGLE_FILE and len(raw) == 1)):
            raise BundleError(f"resources[{i}]: name {name!r} is not a canonical relative path")
        if name in seen:
            raise BundleError(f"resources[{i}]: duplicate name {name!r}")
        seen.add(name)
        if not isinstance(digest, str) or len(digest) != 64 or digest.strip("0123456789abcdef"):
            raise BundleError(f"resources[{i}]: digest is not 64 lower-case hex digits")
        out.append((name, bytes.fromhex(digest)))
    return tuple(out)


def _excludes(ignore_paths: Sequence[str]) -> tuple[str, ...]:
    # Anchored at the model root, literal (not globs): '/' makes our walk
    # match the whole relative path.
    return tuple("/" + glob.escape(p) for p in ignore_paths)


def build(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    ignore_paths: Sequence[str] = (),
    exclude: Sequence[str] = (),
    default_ignores: bool = True,
    jobs: int | None = None,
    progress: Progress | None = None,
    layout: str | None = None,
    revision: str | None = None,
) -> OmsStatement:
    """Hash a model directory the way `model_signing sign` does.
    `ignore_paths` are paths relative to the model root, recorded as given;
    `exclude` are merkle's patterns (merkle.source.walk.Excluder), and each
    file or folder they leave out is recorded in `ignore_paths` by its path
    (OMS records paths, not patterns: rule O7); `default_ignores` adds
    OpenSSF's top-level git files (DEFAULT_IGNORES).  A local_dir is
    recognised and its `.cache/huggingface` recorded in `ignore_paths`; a
    cache folder is read through its snapshot only when `layout` says so
    ("hf-cache"): an OMS statement cannot record it, so its verifier must be
    told the same (docs/hf.md, HF10).  A model with no file to sign is
    refused (OMS 6.1: rule O8)."""
    if _is_file(path):
        if exclude:
            raise UsageError(f"{option('exclude')} applies to a model folder; this model is one file", os.fspath(path))
        return _build_file(os.fspath(path), name, DEFAULT_IGNORES if default_ignores else (), jobs, progress)
    for p in ignore_paths:
        if path_problem(p):
            raise UsageError(f"ignore path {p!r} is not a relative path inside the model ({path_problem(p)})")
    ignores = tuple(dict.fromkeys((*ignore_paths, *(DEFAULT_IGNORES if default_ignores else ()))))
    listing = list_source(path, (*_excludes(ignores), *exclude), layout=LayoutOptions(layout, revision))
    if exclude:
        if listing.pruned is None:
            raise UsageError(
                f"{option('exclude')} with an OpenSSF statement applies to plain folders: the paths it leaves "
                "out are recorded one by one, and this layout is not walked that way",
                os.fspath(path),
            )
        for p in listing.pruned:
            if path_problem(p):
                raise UsageError(
                    f"cannot record {ascii(p)[1:-1]} in ignore_paths ({path_problem(p)}): rename it, or leave it "
                    f"out of {option('exclude')}",
                    os.fspath(path),
                )
        ignores = tuple(dict.fromkeys((*ignores, *listing.pruned)))
    found = listing.found
    if found is not None and found.exclusions is None and layout is None:
        cache = option(f'layout="{found.layout}"')
        raise UsageError(
            "a Hugging Face cache folder is read through its snapshot, which an OpenSSF statement "
            f"cannot record: sign a local_dir, or pass {cache} (and verify with it)",
            os.fspath(path),
        )
    if found is None and revision:
        raise UsageError(f"{option('revision')} applies to Hugging Face checkouts", os.fspath(path))
    if found is not None and found.exclusions:
        ignores = (*ignores, *found.exclusions)  # so that model_signing leaves the download bookkeeping out too
    if listing.problems:
        first = listing.problems[0]
        raise SourceError(first.reason, os.path.join(os.fspath(path), first.path))
    if not listing.files:
        raise UsageError(
            "no file to sign: an OpenSSF model must not be empty"
            + (" (every file was ignored or excluded)" if listing.pruned else ""),
            os.fspath(path),
        )
    digests = digest_files(listing.files, _sha256, jobs, progress, follow_symlinks=False)
    for d in digests:
        if d.error is not None:
            raise d.error
    model = name or os.path.basename(os.path.abspath(os.fspath(path)))
    return OmsStatement(model, tuple((d.path, d.root) for d in digests), ignores)


def _is_file(path: str | os.PathLike[str]) -> bool:
    """A model that is one regular file (never through a link: OMS signs no links)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def _digest_file(path: str, jobs: int | None, progress: Progress | None) -> FileDigest:
    st = os.lstat(path)
    (d,) = digest_files([WalkedFile(SINGLE_FILE, path, st.st_size, identity(st))], _sha256, jobs, progress)
    return d


def _build_file(
    path: str, name: str | None, ignores: Sequence[str], jobs: int | None, progress: Progress | None
) -> OmsStatement:
    d = _digest_file(path, jobs, progress)
    if d.error is not None:
        raise SourceError(d.error.message, path)
    return OmsStatement(name or os.path.basename(os.path.abspath(path)), ((SINGLE_FILE, d.root),), tuple(ignores))


def _verify_file(path: str, stmt: OmsStatement, jobs: int | None, progress: Progress | None) -> Report:
    """A model that is one file: the statement must sign one resource, named
    "." (as model-signing writes it) or the file's name (as OMS 6.1.2 says)."""
    started = time.perf_counter()
    base = os.path.basename(os.path.abspath(path))
    if len(stmt.resources) != 1 or stmt.resources[0][0] not in (SINGLE_FILE, base):
        outcomes = [Outcome(n, Status.MISSING) for n, _ in stmt.resources]
        outcomes.append(Outcome(base, Status.EXTRA, "the model is one file; the statement signs a folder"))
        return Report(stmt.subject_digest, "sha256", tuple(outcomes), False, 0, time.perf_counter() - started)
    signed, digest = stmt.resources[0]
    d = _digest_file(path, jobs, progress)
    if d.error is not None:
        outcome = Outcome(signed, Status.ERROR, d.error.message)
    elif d.root == digest:
        outcome = Outcome(signed, Status.OK)
    else:
        outcome = Outcome(signed, Status.MISMATCH, "sha256 differs")
    hashed = d.size if d.error is None else 0
    return Report(stmt.subject_digest, "sha256", (outcome,), False, hashed, time.perf_counter() - started)


def verify(
    path: str | os.PathLike[str],
    stmt: OmsStatement,
    *,
    exclude: Sequence[str] = (),
    allow_extra: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    layout: str | None = None,
    revision: str | None = None,
) -> Report:
    """Rehash the model and compare with an OMS statement (closed world).
    Left out: the statement's `ignore_paths` and OpenSSF's own top-level
    git files (DEFAULT_IGNORES, as model_signing does, unless the statement
    signs a resource there: that is checked), nothing else.  The verifier's
    own choices, as model_signing's `--ignore_paths` and
    `--ignore_unsigned_files`: `exclude` (merkle's patterns) hides files the
    statement does not sign, and `allow_extra` lets every such file pass; a
    signed file is always checked, whatever they say (rule O9).  The tree is
    read plain unless `layout` (or `revision`, a cache snapshot) says
    otherwise: the statement records no origin (HF10)."""
    if _is_file(path) and layout is None and revision is None:
        return _verify_file(os.fspath(path), stmt, jobs, progress)
    started = time.perf_counter()
    signed = [n for n, _ in stmt.resources]
    ignores = tuple(
        dict.fromkeys(
            (
                *stmt.ignore_paths,
                *(p for p in DEFAULT_IGNORES if not any(n == p or n.startswith(p + "/") for n in signed)),
            )
        )
    )
    reading = LayoutOptions(choose_layout(path, None, layout, revision), revision, bookkeeping=False)
    listing = list_source(path, _excludes(ignores), layout=reading)
    if listing.found is None and revision:
        raise UsageError(f"{option('revision')} applies to Hugging Face cache folders", os.fspath(path))
    present = {f.path: f for f in listing.files}
    expected = dict(stmt.resources)
    hidden = Excluder(exclude)  # the verifier's exclusions only hide what is not signed
    outcomes = [
        Outcome(p.path, Status.ERROR if p.path in expected else Status.EXTRA, p.reason)
        for p in listing.problems
        if p.path in expected or not (exclude and hidden.covers(p.path))
    ]
    problems = {p.path: p for p in listing.problems}
    for p in expected:
        if p in present or p in problems:
            continue
        parent = blocked_by(p, problems)  # behind a refused link or special file: unknown, never missing
        outcomes.append(
            Outcome(p, Status.ERROR, f"{parent.path}: {parent.reason}")
            if parent is not None
            else Outcome(p, Status.MISSING)
        )
    outcomes += [Outcome(p, Status.EXTRA) for p in present if p not in expected and not (exclude and hidden.covers(p))]
    todo = [f for f in listing.files if f.path in expected]
    hashed = 0
    for d in digest_files(todo, _sha256, jobs, progress, follow_symlinks=False):
        if d.error is not None:
            outcomes.append(Outcome(d.path, Status.ERROR, d.error.message))
        elif d.root == expected[d.path]:
            hashed += d.size
            outcomes.append(Outcome(d.path, Status.OK))
        else:
            hashed += d.size
            outcomes.append(Outcome(d.path, Status.MISMATCH, "sha256 differs"))
    outcomes.sort(key=lambda o: o.path)
    return Report(stmt.subject_digest, "sha256", tuple(outcomes), allow_extra, hashed, time.perf_counter() - started)


def _sha256(_: object) -> hashlib._Hash:
    return hashlib.sha256()
