"""A model card's license, read only after its bytes verified: against a
manifest (`readme_license`, `verified_readme`) or a checkout's Hub identity
(`hub_readme_license`); and one file of a cache snapshot, read as the tree
check reads it (`open_snapshot_file`).  docs/hf.md has the rules."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence

from merkle.errors import FormatError, IntegrityError, PolicyError, SourceError
from merkle.format.hub import SHA256, git_blob_id
from merkle.format.manifest import Manifest
from merkle.hashing.files import hash_stream
from merkle.hf.layout import Checkout, open_checkout
from merkle.hf.license import MAX_README_BYTES, README, check_license
from merkle.signing.oms import OmsStatement
from merkle.source.layouts import LayoutOptions, choose_layout
from merkle.source.local import open_regular
from merkle.source.readers import LocalFile, Reader
from merkle.source.walk import WalkedFile, blocked_by


def _readme_location(path: str, checkout: Checkout | None) -> str | WalkedFile | None:
    """README.md of a checkout as listed, or at the top of the tree (the
    user's path joined with one name, opened without following a link)."""
    if checkout is not None:
        found = [f.walked for f in checkout.files if f.path == README]
        return found[0] if found else None
    candidate = os.path.join(path, README)
    return candidate if os.path.lexists(candidate) else None


def _read_readme(location: str | WalkedFile) -> bytes:
    fd, st = location.open() if isinstance(location, WalkedFile) else open_regular(location, follow_symlinks=False)
    try:
        if st.st_size > MAX_README_BYTES:
            raise FormatError(f"larger than the {MAX_README_BYTES}-byte limit for a model card", README)
        data = os.read(fd, MAX_README_BYTES + 1)
        while len(data) < st.st_size:
            more = os.read(fd, MAX_README_BYTES + 1 - len(data))
            if not more:
                break
            data += more
        return data
    except OSError as e:
        raise SourceError(e.strerror or str(e), README) from e
    finally:
        os.close(fd)


def readme_license(
    path: str | os.PathLike[str],
    manifest: Manifest | OmsStatement,
    allowed: Sequence[str],
    revision: str | None = None,
    layout: str | None = None,
) -> tuple[str, ...]:
    """Apply a license policy to the README.md under `path`, after checking
    the very bytes parsed against `manifest` (a merkle manifest or an OpenSSF
    model-signing statement, whose signature the caller has verified).
    README.md is found the way the tree check reads `path` (`choose_layout`:
    the manifest's origin, `layout`, `revision`).  Fails closed: PolicyError
    when README.md is not in the manifest or not on disk, IntegrityError
    when it does not match."""
    return check_license(verified_readme(path, manifest, revision, layout), allowed)


def verified_readme(
    path: str | os.PathLike[str],
    manifest: Manifest | OmsStatement,
    revision: str | None = None,
    layout: str | None = None,
) -> bytes:
    """README.md's bytes under `path`, found the way the tree check reads
    `path` (a cache folder's snapshot too), and checked against `manifest`
    before they are returned: PolicyError when it is not signed or not
    there, IntegrityError when it does not match."""
    name = os.fspath(path)
    if isinstance(manifest, OmsStatement):
        digest = dict(manifest.resources).get(README)
        size, origin = None, None
    else:
        entry = manifest.entry(README)
        digest, size, origin = (entry.root, entry.size, manifest.origin) if entry else (None, None, None)
    if digest is None:
        raise PolicyError("README.md is not in the manifest: the license cannot be established", name)
    checkout = None
    if choose_layout(name, origin, layout, revision) == "hf-cache":
        checkout = open_checkout(name, LayoutOptions("hf-cache", revision, bookkeeping=False))
    location = _readme_location(name, checkout)
    if location is None:
        raise PolicyError("README.md is not present: the license cannot be checked", name)
    data = _read_readme(location)
    if isinstance(manifest, OmsStatement):
        good = hashlib.sha256(data).digest() == digest
    else:
        good = len(data) == size and hash_stream(io.BytesIO(data), manifest.algorithm, manifest.chunk_size) == digest
    if not good:
        raise IntegrityError("README.md does not match the manifest: its license is not read", name)
    return data


def hub_readme_license(checkout: Checkout, allowed: Sequence[str]) -> tuple[str, ...]:
    """The same policy against a checkout's Hub identity for README.md (its
    git blob id, from the tree listing or the blob name)."""
    found = [f for f in checkout.files if f.path == README]
    if not found:
        raise PolicyError("README.md is not present: the license cannot be checked", checkout.root)
    expected = checkout.expected(found[0])
    if expected is None:
        raise PolicyError("nothing records README.md's Hub identity: its license is not read", checkout.root)
    data = _read_readme(found[0].walked)
    got = hashlib.sha256(data).hexdigest() if expected[0] == SHA256 else git_blob_id(data)
    if got != expected[1]:
        raise IntegrityError("README.md does not match its Hub identity: its license is not read", checkout.root)
    return check_license(data, allowed)


def open_snapshot_file(path: str, name: str, revision: str | None = None, follow_symlinks: bool = False) -> Reader:
    """File `name` of the Hugging Face cache folder or snapshot at `path`,
    read as the tree check reads it (docs/hf.md HF3, HF10): its blob,
    reached through the snapshot's link checks; a snapshot file that is not
    listed is never opened (SourceError says why it is not)."""
    checkout = open_checkout(path, LayoutOptions("hf-cache", revision, bookkeeping=False))
    if checkout is None:  # no longer a directory: opened (and refused) as it is
        return LocalFile.below(path, name, follow_symlinks)
    shown = os.path.join(checkout.root, *name.split("/"))
    found = [f.walked for f in checkout.files if f.path == name]
    if found:
        return LocalFile(shown, found[0].open())
    problems = {p.path: p for p in checkout.problems}
    problem = problems.get(name) or blocked_by(name, problems)
    if problem is not None:
        raise SourceError(problem.reason if problem.path == name else f"{problem.path}: {problem.reason}", shown)
    if name in checkout.broken:
        raise SourceError(f"broken link: blobs/{checkout.broken[name]} does not exist", shown)
    raise SourceError("not in the snapshot", shown)
