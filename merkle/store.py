"""The attestation store: bundles kept by content address, plus the highest
version seen per subject name (rollback protection).

Layout under the store directory (default `$MERKLE_STORE`, else
`$XDG_CACHE_HOME/merkle/attestations`, else `~/.cache/merkle/attestations`):

    bundles/<sha256 of the bundle bytes>.json   written once, atomically
    index.json                                  what each bundle says, and
                                                the highest version per name

Updates take an exclusive lock on `.lock`, so concurrent verifications
cannot lose a version.  Only bundles whose signatures verified are added.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import _json
from .attest import Verified
from .errors import FormatError, PolicyError, SourceError
from .sources.local import read_capped, write_atomic

MAX_INDEX_BYTES = 256 << 20


def default_dir() -> str:
    if os.environ.get("MERKLE_STORE"):
        return os.environ["MERKLE_STORE"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "merkle", "attestations")


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    root: str
    version: int
    kind: str
    signers: tuple[str, ...]
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "root": self.root, "version": self.version,
                "kind": self.kind, "signers": list(self.signers), "path": self.path}


_HEX64 = re.compile("[0-9a-f]{64}")
_BUNDLE_KEYS = {"name", "root", "version", "kind", "signers"}


def checked_index(doc: Any) -> dict[str, Any]:
    """`doc` if it has the index's shape, checked whole before any field is
    used (the index is local state another user or a crash may have
    damaged); FormatError naming the first bad part otherwise."""
    if not isinstance(doc, dict) or set(doc) != {"bundles", "highest"}:
        raise FormatError("not a merkle attestation index (keys bundles and highest)")
    bundles, highest = doc["bundles"], doc["highest"]
    if not isinstance(bundles, dict) or not isinstance(highest, dict):
        raise FormatError("bundles and highest must be objects")
    for bundle_id, r in bundles.items():
        where = f"bundles[{bundle_id!r}]"
        if not _HEX64.fullmatch(bundle_id):  # it names a file under bundles/
            raise FormatError(f"{where}: the id is not a lower-case sha256 digest")
        if not isinstance(r, dict) or set(r) != _BUNDLE_KEYS:
            raise FormatError(f"{where} must have exactly {', '.join(sorted(_BUNDLE_KEYS))}")
        if not isinstance(r["name"], str) or not _is_root(r["root"]) or not _is_count(r["version"]):
            raise FormatError(f"{where}: name, root or version is malformed")
        if r["kind"] not in ("merkle", "oms") or not isinstance(r["signers"], list) or not all(
                isinstance(k, str) for k in r["signers"]):
            raise FormatError(f"{where}: kind or signers is malformed")
    for name, seen in highest.items():
        if not isinstance(seen, dict) or set(seen) != {"version", "root"} or not _is_count(seen["version"]) \
                or not _is_root(seen["root"]):
            raise FormatError(f"highest[{name!r}] must be {{version, root}}")
    return doc


def _is_root(value: Any) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


class Store:
    def __init__(self, directory: str | None = None) -> None:
        self.dir = directory or default_dir()

    @property
    def _index_path(self) -> str:
        return os.path.join(self.dir, "index.json")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        try:
            os.makedirs(os.path.join(self.dir, "bundles"), exist_ok=True)
            fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise SourceError(f"cannot open the attestation store: {e.strerror or e}", self.dir) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            index = self._read_index()
            yield index
            write_atomic(self._index_path, (_json.dumps(index) + "\n").encode())
        finally:
            os.close(fd)

    def _read_index(self) -> dict[str, Any]:
        if not os.path.exists(self._index_path):
            return {"bundles": {}, "highest": {}}
        doc = _json.loads(read_capped(self._index_path, MAX_INDEX_BYTES), self._index_path, MAX_INDEX_BYTES)
        try:
            return checked_index(doc)
        except FormatError as e:
            raise FormatError(f"malformed attestation index: {e.message}", self._index_path) from e

    def check_version(self, verified: Verified, source: str) -> None:
        """Refuse a statement older than one already seen for its name, or
        the same version with another root (a freeze or mix attack)."""
        if verified.summary is None:
            return  # OMS statements carry no version
        seen = self._read_index()["highest"].get(verified.name)
        if not seen:
            return
        if verified.version < seen["version"]:
            raise PolicyError(
                f"rollback: version {verified.version} of {verified.name!r} is older than version "
                f"{seen['version']} already verified",
                source,
            )
        if verified.version == seen["version"] and verified.root_hex != seen["root"]:
            raise PolicyError(
                f"version {verified.version} of {verified.name!r} was verified before with another root", source
            )

    def add(self, bundle_bytes: bytes, verified: Verified) -> Entry:
        """Keep a verified bundle (idempotent) and record its version."""
        bundle_id = hashlib.sha256(bundle_bytes).hexdigest()
        path = os.path.join(self.dir, "bundles", bundle_id + ".json")
        kind = "merkle" if verified.summary is not None else "oms"
        entry = Entry(bundle_id, verified.name, verified.root_hex, verified.version, kind,
                      tuple(s.key_id for s in verified.signers), path)
        with self._locked() as index:
            if not os.path.exists(path):
                write_atomic(path, bundle_bytes)
            record = entry.to_dict()
            del record["path"], record["id"]
            index["bundles"][bundle_id] = record
            seen = index["highest"].get(verified.name)
            if kind == "merkle" and (not seen or verified.version > seen["version"]):
                index["highest"][verified.name] = {"version": verified.version, "root": verified.root_hex}
        return entry

    def entries(self) -> list[Entry]:
        index = self._read_index()
        out = []
        for bundle_id, r in sorted(index["bundles"].items(), key=lambda kv: (kv[1]["name"], kv[1]["version"])):
            out.append(Entry(bundle_id, r["name"], r["root"], r["version"], r["kind"], tuple(r["signers"]),
                             os.path.join(self.dir, "bundles", bundle_id + ".json")))
        return out

    def find(self, ref: str) -> list[Entry]:
        """Entries whose id starts with `ref`, whose root is `ref`, or whose
        subject name is `ref`."""
        return [e for e in self.entries() if e.name == ref or e.root == ref or (len(ref) >= 8 and e.id.startswith(ref))]
