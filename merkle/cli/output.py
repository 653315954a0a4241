"""Shared output helpers for the subcommands."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(doc: Any) -> None:
    """One JSON document on stdout (the --json contract)."""
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
