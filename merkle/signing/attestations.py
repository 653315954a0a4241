"""The attestation store: bundles kept by content address, and the rollback
records (merkle.signing.trust.History) of what this machine verified.

Layout under the store directory (default `$MERKLE_STORE`, else
`$XDG_CACHE_HOME/merkle/attestations`, else `~/.cache/merkle/attestations`):

    bundles/<sha256 of the bundle bytes>.json   written once, atomically
    index.json                                  {"format": 2, "bundles": what each bundle says,
                                                 "versions": signer identity -> subject -> version, root}

A trust decision and the records it adds happen under one exclusive lock on
`.lock` (`Store.decide`), so two processes verifying at once can neither
corrupt the index nor both pass a rollback check the other should have
failed.  Only bundles whose signatures verified are added.  An index of
format 1 (versions keyed by subject name alone, which failed two models of
one name) is read with its bundles and without its version records.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from merkle.errors import FormatError, SourceError, option
from merkle.format import strictjson
from merkle.signing.statements import Verified
from merkle.signing.trust import History
from merkle.source.local import read_capped, write_atomic
from merkle.source.userdir import cache_dir

MAX_INDEX_BYTES = 256 << 20
FORMAT = 2
_HEX64 = re.compile("[0-9a-f]{64}")


def default_dir() -> str:
    return cache_dir("MERKLE_STORE", "attestations")


@dataclass(frozen=True)
class Entry:
    id: str
    name: str
    root: str
    version: int | None
    kind: str
    signers: tuple[str, ...]
    path: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "root": self.root,
            "version": self.version,
            "kind": self.kind,
            "signers": list(self.signers),
            "path": self.path,
        }


@dataclass
class _Index:
    bundles: dict[str, dict[str, Any]]
    history: History

    def to_bytes(self) -> bytes:
        return (
            strictjson.dumps({"format": FORMAT, "bundles": self.bundles, "versions": self.history.to_doc()}) + "\n"
        ).encode()


class Store:
    def __init__(self, directory: str | None = None) -> None:
        self.dir = directory or default_dir()

    @property
    def _index_path(self) -> str:
        return os.path.join(self.dir, "index.json")

    def decide(self, bundles: Sequence[bytes], check: Callable[[History], Verified]) -> Verified:
        """Run `check` (a merkle.signing.trust decision) against this store's history
        and, when it passes, keep `bundles` and the records of what it
        verified: all under the store's lock."""
        with self._locked() as index:
            verified = check(index.history)
            index.history = index.history.after(verified)
            for data in bundles:
                self._keep(index, data, verified)
        return verified

    def add(self, bundle_bytes: bytes, verified: Verified) -> None:
        """Keep a bundle merkle signed itself (idempotent); its version, if
        any, is recorded as verified."""
        self.decide([bundle_bytes], lambda history: verified)

    def history(self) -> History:
        return self._read_index().history

    def _keep(self, index: _Index, data: bytes, verified: Verified) -> None:
        bundle_id = hashlib.sha256(data).hexdigest()
        path = os.path.join(self.dir, "bundles", bundle_id + ".json")
        if not os.path.exists(path):
            write_atomic(path, data)
        index.bundles[bundle_id] = {
            "name": verified.name,
            "root": verified.root_hex,
            "version": verified.version,
            "kind": _kind(verified),
            "signers": [s.key_id for s in verified.signers],
        }

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_Index]:
        try:
            os.makedirs(os.path.join(self.dir, "bundles"), exist_ok=True)
            fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise SourceError(
                f"cannot open the attestation store: {e.strerror or e} (choose another with "
                f"{option('attestations=DIR')}, or none with {option('attestations=False')})",
                self.dir,
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            index = self._read_index()
            yield index
            write_atomic(self._index_path, index.to_bytes())
        finally:
            os.close(fd)

    def _read_index(self) -> _Index:
        if not os.path.exists(self._index_path):
            return _Index({}, History())
        where = self._index_path
        doc = strictjson.loads(read_capped(where, MAX_INDEX_BYTES), where, MAX_INDEX_BYTES)
        if isinstance(doc, dict) and set(doc) == {"bundles", "highest"}:  # format 1: records keyed by name alone
            doc = {"format": FORMAT, "bundles": doc["bundles"], "versions": {}}
        if not isinstance(doc, dict) or set(doc) != {"format", "bundles", "versions"} or doc["format"] != FORMAT:
            raise FormatError("malformed attestation index: not a merkle attestation index (format 2)", where)
        bundles = doc["bundles"]
        if not isinstance(bundles, dict):
            raise FormatError("malformed attestation index: bundles must be an object", where)
        for bundle_id, record in bundles.items():
            if not _HEX64.fullmatch(bundle_id):  # it names a file under bundles/
                raise FormatError(
                    f"malformed attestation index: bundle id {bundle_id[:70]!r} is not a sha256 digest", where
                )
            if not _is_bundle_record(record):
                raise FormatError(
                    f"malformed attestation index: bundle {bundle_id[:16]}: expected "
                    "{name, root, version, kind, signers}",
                    where,
                )
        return _Index(bundles, History.from_doc(doc["versions"], where))

    def entries(self) -> list[Entry]:
        index = self._read_index()
        out = []
        for bundle_id, r in sorted(index.bundles.items(), key=lambda kv: (kv[1]["name"], kv[1]["version"] or 0)):
            out.append(
                Entry(
                    bundle_id,
                    r["name"],
                    r["root"],
                    r["version"],
                    r["kind"],
                    tuple(r["signers"]),
                    os.path.join(self.dir, "bundles", bundle_id + ".json"),
                )
            )
        return out

    def find(self, ref: str) -> list[Entry]:
        """Entries whose id starts with `ref`, whose root is `ref`, or whose
        subject name is `ref`."""
        return [e for e in self.entries() if e.name == ref or e.root == ref or (len(ref) >= 8 and e.id.startswith(ref))]


KINDS = ("merkle", "oms", "policy-result", "bom", "image")
"""What a kept bundle signs: a merkle manifest, an OpenSSF statement, a policy result, an ML-BOM, a container
image."""


def _kind(verified: Verified) -> str:
    if verified.summary is not None:
        return "merkle"
    if verified.image is not None:
        return "image"
    return "policy-result" if verified.result else "bom" if verified.bom else "oms"


def _is_bundle_record(record: object) -> bool:
    if not isinstance(record, dict) or set(record) != {"name", "root", "version", "kind", "signers"}:
        return False
    version, signers = record["version"], record["signers"]
    return (
        isinstance(record["name"], str)
        and isinstance(record["root"], str)
        and _HEX64.fullmatch(record["root"]) is not None
        and record["kind"] in KINDS
        and isinstance(signers, list)
        and all(isinstance(s, str) for s in signers)
        and (version is None or (type(version) is int and version >= 0))
    )


StoreChoice = Store | str | os.PathLike[str] | bool
"""The `attestations` parameter: where rollback records live: True for the default store, a directory or a
Store, False for none (no rollback check, nothing recorded)."""


def as_store(store: StoreChoice) -> Store | None:
    if store is True:
        return Store()
    if store is False:
        return None
    return store if isinstance(store, Store) else Store(os.fspath(store))
