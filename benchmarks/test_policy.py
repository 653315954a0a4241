"""What a policy adds to verification (issue 19's goal: built-in rules and a
small Rego policy on a 100,000-file signed manifest add under 1 s).

Files of 16-64 bytes, 1,000 to a folder (test_million.py's data): 10,000 in
quick mode, 100,000 otherwise; every step a whole process against one signed
bundle: `verify --key`, then the same with a policy of built-in rules only
(signers, age, files: no pickle or executable, which reads every file's first
bytes again through verified reads), and with a small Rego module (the
pickle rule, over `input.files`) besides.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from . import datasets
from .procs import merkle_cli, run
from .settings import SEED, Settings

pytestmark = pytest.mark.benchmark(group="policy")

BUILTIN = """version: 1
rules:
  signers:
    keys: [key.pub]
  age:
    signed_within: 90d
  files:
    forbid: [pickle, executable]
  hashing:
    algorithms: [blake3]
"""
REGO = """package merkle

import rego.v1

deny contains msg if {
    some f in input.files
    f.kind == "pickle"
    msg := sprintf("%s is a pickle", [f.path])
}
"""


@pytest.fixture(scope="module")
def signed(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    count = 10_000 if settings.quick else 100_000
    files = datasets.tiny_files(settings.data_dir, count, SEED)
    work = tmp_path_factory.mktemp("policy")
    run([*merkle_cli(), "keygen", "-o", str(work / "key")])
    run([*merkle_cli(), "build", str(files.root), "--sign", str(work / "key"), "-o", str(work / "b.json"), "-q",
         "--no-store"])  # fmt: skip
    (work / "builtin.yaml").write_text(BUILTIN)
    (work / "small.rego").write_text(REGO)
    (work / "both.yaml").write_text(BUILTIN + "  rego: [small.rego]\n")
    return files.root, work, count


@pytest.mark.parametrize(
    "step", ["verify --key", "verify --key --policy (built-in rules)", "verify --key --policy (built-in + Rego)"]
)
def test_policy_step(step: str, signed: tuple[Path, Path, int], measure: Callable[..., None]) -> None:
    root, work, count = signed
    argv = [
        *merkle_cli(),
        "verify",
        str(root),
        str(work / "b.json"),
        "--key",
        str(work / "key.pub"),
        "-q",
        "--no-store",
    ]
    if "built-in rules" in step:
        argv += ["--policy", str(work / "builtin.yaml")]
    elif "Rego" in step:
        argv += ["--policy", str(work / "both.yaml")]
    measure(f"policy: {count:,} files", step, lambda: run(argv), 0)
