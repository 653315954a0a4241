"""Zarr stores: signed manifests of every key, each array with its own
subtree root (the manifest's `zarr` record, merkle.format.zarr), and
`VerifiedStore`, a read-only zarr store wrapper that checks every byte it
returns against a signed manifest (docs/zarr.md).  Building and auditing
need no zarr; VerifiedStore needs zarr 3 (pip install 'merkle-ml[zarr]')."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merkle.errors import ZarrIntegrityError, install_hint
from merkle.format.zarr import ZarrArray, ZarrLayout
from merkle.zarr.share import array_manifest, check_array_manifest

if TYPE_CHECKING:
    from merkle.zarr.store import VerifiedStore

__all__ = ["VerifiedStore", "ZarrArray", "ZarrIntegrityError", "ZarrLayout", "array_manifest", "check_array_manifest"]


def __getattr__(name: str) -> Any:
    """VerifiedStore, imported on first use: it needs the zarr library."""
    if name == "VerifiedStore":
        try:
            from merkle.zarr.store import VerifiedStore
        except ImportError as e:
            if e.name is not None and e.name.split(".")[0] in ("zarr", "numpy", "numcodecs"):
                raise ImportError(f"merkle.zarr.VerifiedStore needs {e.name}: {install_hint('zarr')}") from e
            raise
        return VerifiedStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
