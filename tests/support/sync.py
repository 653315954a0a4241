"""What the `merkle sync` tests share: the real program with --json, and
trees compared by their files' bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_sync(cli: Any, src: object, dest: object, bundle: object, key: str, *extra: str) -> tuple[Any, Any]:
    """`merkle sync SRC DEST BUNDLE --key KEY --json EXTRA...` through `cli`: (the process, its JSON or None)."""
    r = cli("sync", str(src), str(dest), str(bundle), "--key", key, "--json", *extra)
    assert "Traceback" not in r.stderr, r.stderr
    doc = json.loads(r.stdout) if r.stdout.strip() else None
    return r, doc


def by_path(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in doc["files"]}


def files_of(root: Path) -> dict[str, bytes]:
    """Every regular file below `root` (links left out), by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def same_tree(a: Path, b: Path) -> bool:
    return files_of(a) == files_of(b)
