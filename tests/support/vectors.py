"""The published vectors, read in place from ../shared/vectors/ beside the repository (never copied): the
rfc6962/ probes from transparency-dev/merkle, blake3.json from the BLAKE3 team, and the roots the README
publishes for the first reference leaves."""

import re
from pathlib import Path

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors"


def readme_leaves_and_roots() -> tuple[list[bytes], dict[int, bytes]]:
    text = (VECTORS / "README.md").read_text()
    section = text.split("## rfc6962/", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"leaves are these byte strings, in order \(hex\):(.*?)\.\s*\n\s*Roots", section, re.S)
    assert m, "README leaf list not found"
    leaves = [bytes.fromhex(item.strip().strip('"')) for item in m.group(1).split(",")]
    roots = {int(n): bytes.fromhex(h) for n, h in re.findall(r"^- n=(\d+) ([0-9a-f]{64})$", section, re.M)}
    return leaves, roots
