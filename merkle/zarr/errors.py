"""The integrity error of verified zarr reads."""

from __future__ import annotations

from ..errors import IntegrityError


class ZarrIntegrityError(IntegrityError):
    """A key read through VerifiedStore is not what was signed: its bytes
    differ, it is missing from the store, or it is shorter than signed.
    Deliberately not a FileNotFoundError or KeyError, which zarr would turn
    into fill values.  `array` is the array's path ('' at the store root,
    None for a key outside every array) and `key` the store key."""

    def __init__(self, message: str, key: str, array: str | None) -> None:
        where = f"array {array or '(root)'!r}, key {key!r}" if array is not None else f"key {key!r}"
        super().__init__(message, where)
        self.key = key
        self.array = array
