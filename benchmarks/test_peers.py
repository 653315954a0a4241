"""merkle against its peers on three shapes of data, every tool a whole
process as a user runs it, hot cache, same run:

- one file: 4 GiB (64 MiB in quick mode);
- small files: a dataset of 20,000 files of 4-256 KiB (300 in quick mode);
- model dir: a model repository's small files (config, tokenizer, index,
  card: 1 KB to 9 MB) and three safetensors shards of 1 GiB (16 MiB).

Tools: `merkle build DIR -o M -q` with the C extension (native; the "x merkle"
reference) and with MERKLE_PURE=1 (pure), and on the file `merkle hash FILE`
too; `b3sum` (multi-threaded), `b3sum --num-threads 1` and, on directories,
one single-threaded b3sum per CPU; `openssl dgst -sha256`; and OpenSSF
model-signing (`model_signing sign key DIR`, an ECDSA P-256 key made once per
session) in its default mode (sha256) and its blake3 mode.  The peers that
take file names get them from a prepared NUL-separated list through `xargs
-0`, as in test_many_files.py.  The tools that take a directory (merkle
build, model_signing) get, in the one-file case, a directory holding just
that file (a hard link, no copy).

model-signing 1.1.1's CLI has no option for the hashing algorithm: blake3 is
reachable only through its API (`hashing.Config().use_file_serialization(
hashing_algorithm="blake3")`), so the "(blake3)" row runs `python -c` doing
what `model_signing sign key` does, with that one setting changed.

Peak memory (RssAnon, VmHWM) of merkle native on every dataset is recorded
for the table, with model_signing's default mode as a reference row.  Like
the other suites this records numbers; it asserts nothing about them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

from . import datasets
from .procs import merkle_cli, peak_memory, require, run
from .settings import SEED, Settings
from .table import B3SUM, MERKLE_BUILD, OPENSSL, PEER_FILE, PEER_MODEL, PEER_SMALL, Memory

CPUS = len(os.sched_getaffinity(0))
MS_SHA256 = "model_signing sign key (sha256)"
MS_BLAKE3 = "model_signing sign key (blake3)"
# What `model_signing sign key MODEL --private_key KEY --signature SIG` runs
# (model_signing/_cli.py, 1.1.1), with blake3 instead of the default sha256.
MS_BLAKE3_CODE = """\
import sys
import model_signing
model, key, signature = sys.argv[1:]
model_signing.signing.Config().use_elliptic_key_signer(private_key=key).set_hashing_config(
    model_signing.hashing.Config().use_file_serialization(hashing_algorithm="blake3")
).sign(model, signature)
"""
NATIVE = ["env", "-u", "MERKLE_PURE"]  # the C extension, whatever the caller's environment says
PURE = ["env", "MERKLE_PURE=1"]


@dataclass(frozen=True)
class Target:
    """What every tool hashes in one case: the same bytes, however given."""

    root: Path  # the directory merkle builds and model_signing signs
    file: Path | None  # the one file of the one-file case (root holds just a hard link to it)
    names: Path  # NUL-separated list of the files, for `xargs -0 -a`
    count: int
    size: int  # total bytes


@dataclass(frozen=True)
class Call:
    target: Target
    manifest: Path  # merkle's output
    signature: Path  # model_signing's output
    key: Path  # ECDSA P-256 private key, PEM


def _model_signing() -> str:
    """The model_signing script beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "model_signing"
    return str(beside) if beside.is_file() else "model_signing"


def _each(t: Target, *command: str, parallel: int = 1) -> list[str]:
    """command over the one file, or over every file of the list through xargs
    (in `parallel` slices run side by side)."""
    if t.file:
        return [*command, str(t.file)]
    per = -(-t.count // parallel)  # ceil: one slice of the list per process
    split = ["-P", str(parallel), "-n", str(per)] if parallel > 1 else []
    return ["xargs", "-0", "-a", str(t.names), *split, *command]


def _build(c: Call) -> list[str]:
    return [*merkle_cli(), "build", str(c.target.root), "-o", str(c.manifest), "-q"]


def _hash(c: Call) -> list[str]:
    return [*merkle_cli(), "hash", str(c.target.file)]


def _sign(c: Call) -> list[str]:
    return [
        _model_signing(),
        "sign",
        "key",
        str(c.target.root),
        "--private_key",
        str(c.key),
        "--signature",
        str(c.signature),
    ]


# tool -> (program that must be installed or None, argv of a call, the cases it runs on)
ALL = (PEER_FILE, PEER_SMALL, PEER_MODEL)
DIRS = (PEER_SMALL, PEER_MODEL)
TOOLS: dict[str, tuple[str | None, Callable[[Call], list[str]], tuple[str, ...]]] = {
    MERKLE_BUILD: (None, lambda c: [*NATIVE, *_build(c)], ALL),
    "merkle build (pure)": (None, lambda c: [*PURE, *_build(c)], ALL),
    "merkle hash": (None, lambda c: [*NATIVE, *_hash(c)], (PEER_FILE,)),
    "merkle hash (pure)": (None, lambda c: [*PURE, *_hash(c)], (PEER_FILE,)),
    B3SUM: ("b3sum", lambda c: _each(c.target, "b3sum"), ALL),
    "b3sum --num-threads 1": ("b3sum", lambda c: _each(c.target, "b3sum", "--num-threads", "1"), ALL),
    f"{CPUS} x b3sum --num-threads 1": (
        "b3sum",
        lambda c: _each(c.target, "b3sum", "--num-threads", "1", parallel=CPUS),
        DIRS,
    ),
    OPENSSL: ("openssl", lambda c: _each(c.target, "openssl", "dgst", "-sha256"), ALL),
    MS_SHA256: ("model_signing", _sign, ALL),
    MS_BLAKE3: (
        "model_signing",
        lambda c: [sys.executable, "-c", MS_BLAKE3_CODE, str(c.target.root), str(c.key), str(c.signature)],
        ALL,
    ),
}
FIXTURES = {PEER_FILE: "peer_file", PEER_SMALL: "peer_small", PEER_MODEL: "peer_model"}
SHORT = {PEER_FILE: "file", PEER_SMALL: "small", PEER_MODEL: "model"}


@pytest.fixture(scope="module")
def peer_file(settings: Settings) -> Target:
    big = datasets.big_file(settings.data_dir, settings.peer_big_size, SEED)
    root = datasets.one_file_dir(settings.data_dir, big)
    names = settings.data_dir / f"one-file-{big.size}.list0"
    names.write_bytes(os.fsencode(big.path) + b"\0")
    return Target(root, big.path, names, 1, big.size)


@pytest.fixture(scope="module")
def peer_small(settings: Settings) -> Target:
    files = datasets.small_files(
        settings.data_dir, settings.peer_small_count, settings.small_min, settings.small_max, SEED
    )
    return Target(files.root, None, files.names, files.count, files.size)


@pytest.fixture(scope="module")
def peer_model(settings: Settings) -> Target:
    model = datasets.model_dir(settings.data_dir, settings.shard_size, SEED)
    return Target(model.root, None, model.names, model.count, model.size)


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh ECDSA P-256 private key (PKCS#8 PEM, unencrypted) for model_signing."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path_factory.mktemp("peers-key") / "signing-key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _require(tool: str, case: str) -> None:
    """Skip, saying what to install, when a peer is missing."""
    program = TOOLS[tool][0]
    if program == "model_signing":
        if tool == MS_BLAKE3 and find_spec("model_signing") is None:
            pytest.skip(f"model_signing is not importable by {sys.executable} (pip install model-signing)")
        require(_model_signing())
    elif program:
        require(program)
    if case != PEER_FILE and program in ("b3sum", "openssl"):
        require("xargs")


def _call(request: pytest.FixtureRequest, case: str, tmp_path: Path, key: Path) -> Call:
    target: Target = request.getfixturevalue(FIXTURES[case])
    return Call(target, tmp_path / "manifest.json", tmp_path / "model.sig", key)


PARAMS = [
    pytest.param(case, tool, id=f"{SHORT[case]}-{tool}", marks=pytest.mark.benchmark(group=case))
    for case in ALL
    for tool, (_, _, cases) in TOOLS.items()
    if case in cases
]


@pytest.mark.parametrize(("case", "tool"), PARAMS)
def test_peer(
    case: str,
    tool: str,
    measure: Callable[..., None],
    signing_key: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    _require(tool, case)
    call = _call(request, case, tmp_path, signing_key)
    argv = TOOLS[tool][1](call)
    measure(case, tool, lambda: run(argv), call.target.size)


# Peak memory: merkle native on every dataset; model_signing's default as reference.
MEMORY_TOOLS = {
    PEER_FILE: ("merkle hash", MERKLE_BUILD, MS_SHA256),
    PEER_SMALL: (MERKLE_BUILD, MS_SHA256),
    PEER_MODEL: (MERKLE_BUILD, MS_SHA256),
}
MEMORY_NAMES = {"merkle hash": "merkle hash", MERKLE_BUILD: "merkle build", MS_SHA256: "model_signing sha256"}


@pytest.mark.parametrize(
    ("case", "tool"),
    [pytest.param(case, tool, id=f"{SHORT[case]}-{tool}") for case, tools in MEMORY_TOOLS.items() for tool in tools],
)
def test_peak_memory(
    case: str,
    tool: str,
    signing_key: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    record_memory: Callable[[Memory], None],
) -> None:
    _require(tool, case)
    call = _call(request, case, tmp_path, signing_key)
    peak = peak_memory(TOOLS[tool][1](call))
    what = {PEER_FILE: "one file", PEER_SMALL: f"{call.target.count} files", PEER_MODEL: "model dir"}[case]
    record_memory(Memory(f"{MEMORY_NAMES[tool]}: {what}", call.target.size, peak.rss_anon, peak.hwm, peak.samples))


def test_same_bytes(peer_file: Target, peer_small: Target, peer_model: Target) -> None:
    """Every tool of a case sees the same files: the list matches the directory."""
    for t in (peer_file, peer_small, peer_model):
        listed = {Path(os.fsdecode(n)).resolve() for n in t.names.read_bytes().split(b"\0") if n}
        walked = {p.resolve() for p in t.root.rglob("*") if p.is_file()}
        assert len(listed) == t.count and len(walked) == t.count
        if t.file is None:
            assert listed == walked
        else:
            assert os.path.samefile(t.file, next(iter(walked)))
        assert sum(p.stat().st_size for p in walked) == t.size
