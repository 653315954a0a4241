"""Every exception merkle raises, split by cause.

The CLI maps each class to an exit code: integrity and signature failures
exit 1 (the data is not what was signed); bad input, unreadable sources and
usage errors exit 2 (we could not decide).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from merkle.display import shown

MAX_MESSAGE = 2000
"""Characters of a message printed; longer ones are cut in the middle."""
DISTRIBUTION = "merkle-ml"  # the name on the package index; the import and the command stay `merkle`


def install_hint(extra: str) -> str:
    """How to install an optional extra, for messages about a missing library."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


_SPELLINGS: dict[str, str] = {}


def option(name: str) -> str:
    """An option as a message names it.  Messages are written once, in the
    library's words: `name` is how a Python caller asks for it (a keyword
    argument, `follow_symlinks=True`, or a function, `audit_fast`), unless a
    front end that spells options its own way (the CLI: its flags) said so
    with `spelled`."""
    return _SPELLINGS.get(name, name)


@contextlib.contextmanager
def spelled(spellings: Mapping[str, str]) -> Iterator[None]:
    """Within it, `option` answers with `spellings` (the library's name ->
    the front end's).  Process-wide, as a front end is: messages made on
    worker threads speak its words too."""
    saved = dict(_SPELLINGS)
    _SPELLINGS.update(spellings)
    try:
        yield
    finally:
        _SPELLINGS.clear()
        _SPELLINGS.update(saved)


class MerkleError(Exception):
    """Base class. `path` names the file, manifest or URL concerned, if any."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        # Paths and messages carry what users, file systems and hostile
        # documents wrote: escaped (merkle/display.py) so that an error is
        # always one line, cannot forge another, and names no file falsely.
        message = shown(self.message)
        if len(message) > MAX_MESSAGE:  # it quotes a hostile document: a line to read, not the document
            message = f"{message[: MAX_MESSAGE - 300]}... ({len(message)} characters) ...{message[-200:]}"
        return f"{shown(self.path)}: {message}" if self.path else message


class UsageError(MerkleError):
    """The caller asked for something impossible (bad option, bad value)."""


class FormatError(MerkleError):
    """A manifest, sidecar or sums file is malformed or hostile."""


class UnsupportedError(FormatError):
    """Well-formed, but names a version or algorithm this build refuses."""


class PathError(FormatError):
    """A path is not canonical or would escape the checked root."""


class SourceError(MerkleError):
    """Input could not be read as expected: missing, unreadable, special
    file, refused symlink, or changed while it was being hashed."""


class UnsafeStateError(SourceError):
    """State that steers merkle's work (a checkpoint, its directory or key)
    could have been written by another user (or, a key, read): refused."""


class IntegrityError(MerkleError):
    """Content does not match what the manifest or proof commits to."""

    exit_code = 1


class ChunkError(IntegrityError):
    """A chunk's bytes do not hash to its signed leaf (`chunk` is its index)."""

    def __init__(self, message: str, path: str | None, chunk: int) -> None:
        super().__init__(message, path)
        self.chunk = chunk


class ZarrIntegrityError(IntegrityError):
    """A key read through merkle.zarr.VerifiedStore is not what was signed:
    its bytes differ, it is missing from the store, or it is shorter than
    signed.  Deliberately not a FileNotFoundError or KeyError, which zarr
    would turn into fill values.  `array` is the array's path ('' at the
    store root, None for a key outside every array) and `key` the store key."""

    def __init__(self, message: str, key: str, array: str | None) -> None:
        where = f"array {array or '(root)'!r}, key {key!r}" if array is not None else f"key {key!r}"
        super().__init__(message, where)
        self.key = key
        self.array = array


class ProofError(IntegrityError):
    """An inclusion or consistency proof does not verify."""


class SignatureError(IntegrityError):
    """A signature, key, certificate or trust rule check failed."""


class BundleError(SignatureError, FormatError):
    """A bundle or statement is malformed: it cannot be trusted (exit 1)."""


class PolicyError(SignatureError):
    """Signed and valid, but refused by policy: rollback, expiry, license."""


class SidecarWarning(UserWarning):
    """A leaf sidecar was stale or damaged and has been ignored."""


class KeyWarning(UserWarning):
    """A signing key or its secret is kept less safely than it should be (a PIN file others can read)."""


class CheckpointWarning(UserWarning):
    """A checkpoint could not be kept or read: the job goes on without it."""
