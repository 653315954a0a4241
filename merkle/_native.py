"""Which implementation serves the hot paths: the C extension (ext/, built by
a normal install when a compiler and OpenSSL's headers are present) or the
pure-Python twins.  Both give identical bytes (tests/test_native.py runs
them side by side); MERKLE_PURE=1 forces the pure path.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Final

PURE_ENV: Final = "MERKLE_PURE"
CODES: Final = {"blake3": 1, "sha256": 2}
"""Algorithm codes the extension takes (the leaf sidecar's, rule S1)."""


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return None, f"pure Python (forced by {PURE_ENV}={os.environ[PURE_ENV]})"
    try:
        from . import _merkle  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        return None, "pure Python (the C extension merkle._merkle is not installed: no compiler at install time?)"
    return _merkle, "native (C extension merkle._merkle)"


native, status = _load()
