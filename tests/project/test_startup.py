"""Start-up is part of every command (issue 16): a command imports what it
uses, and nothing else.  Each test runs the real `merkle` program in a
fresh interpreter and pins the modules it loaded, never a time.

The child runs with -S (no site: its .pth files, an editable install's
finder among them, import modules of their own) and a PYTHONPATH of the
merkle under test and the installed libraries, so that what it loads is
merkle's doing; `BARE` is what the same child loads without merkle.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import merkle

ENTRY = (
    "import sys\n"
    "out, argv = sys.argv[1], sys.argv[2:]\n"
    "code = 0\n"
    "if argv != ['-']:\n"
    "    from merkle.cli import main\n"
    "    code = main(argv)\n"
    "sys.stdout.flush()\n"
    "with open(out, 'w') as f:\n"
    "    f.write('\\n'.join(sorted(sys.modules)))\n"
    "sys.exit(code)\n"
)
"""The program as its entry point (merkle.cli:main) runs it; then the names
of every module loaded, written to a file.  Argument `-` alone: no merkle."""

HEAVY = ("cryptography", "fsspec", "s3fs", "zarr", "numpy", "huggingface_hub", "yaml", "dask", "distributed")
"""Libraries only some commands need."""
INTEGRATIONS = ("merkle.hf", "merkle.zarr", "merkle.dask")


def _path() -> str:
    """A PYTHONPATH for a child without site: the merkle under test, then
    the installed libraries this interpreter finds."""
    libraries = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    return os.pathsep.join(dict.fromkeys([str(Path(merkle.__file__).parents[1]), *libraries]))


def _loaded(tmp_path: Path, *argv: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    env = dict(os.environ, PYTHONPATH=_path())
    out = tmp_path / f"modules-{len(list(tmp_path.glob('modules-*')))}.txt"
    run = subprocess.run(
        [sys.executable, "-S", "-c", ENTRY, str(out), *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return set(out.read_text().split("\n")), run


def _under(modules: set[str], *packages: str) -> set[str]:
    """The modules that are one of `packages` or inside one."""
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)}


def _bare(tmp_path: Path) -> set[str]:
    return _loaded(tmp_path, "-")[0]


def test_version_loads_nothing_but_the_package(tmp_path):
    modules, run = _loaded(tmp_path, "--version")
    assert run.stdout == f"merkle {merkle.__version__}\n"
    assert modules - _bare(tmp_path) == {"merkle", "merkle.cli", "__future__"}  # (the annotations import)


def test_importing_the_package_loads_none_of_its_modules(tmp_path):
    code = "import sys, merkle; print(sorted(m for m in sys.modules if m.startswith('merkle')))"
    run = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=_path())
    )
    assert run.stdout.strip() == "['merkle']", run.stdout + run.stderr


def test_hash_loads_the_engine_and_nothing_for_trees_signatures_or_integrations(tmp_path):
    (tmp_path / "small.bin").write_bytes(b"x" * 100)
    modules, run = _loaded(tmp_path, "hash", "small.bin")
    assert run.stdout.endswith("  small.bin\n")
    assert {"merkle.hashing.engine", "merkle.hashing.files", "merkle.cli.sums"} <= modules  # it did hash
    assert _under(modules, *HEAVY, *INTEGRATIONS) == set()
    assert (
        _under(
            modules,
            "merkle.signing",
            "merkle.verifying",
            "merkle.building",
            "merkle.hashing.checkpoint",
            "merkle.source.listing",
            "merkle.source.layouts",
            "merkle.source.remote",
            "merkle.format.zarr",
            "merkle.format.hub",
            "merkle.format.origin",
            "merkle.format.leaves",
            "merkle.format.manifest",
            "merkle.cli.commands",
            "merkle.cli.signing",
            "merkle.cli.trust",
            "merkle.cli.hf",
        )
        == set()
    )
    # the standard library's heavier corners: OpenSSL's hashlib (BLAKE3 is
    # the default), temporary files, shutil (argparse's help width),
    # datetime, the terminal prompt
    assert {"hashlib", "_hashlib", "tempfile", "shutil", "datetime", "getpass", "random", "json"} & modules == set()


def test_verify_with_a_manifest_loads_no_signing_and_no_integration(tmp_path, model_dir):
    manifest = tmp_path / "m.json"
    merkle.build(model_dir).save(manifest)
    modules, run = _loaded(tmp_path, "verify", str(model_dir), str(manifest))
    assert "verified" in run.stderr
    assert _under(modules, *HEAVY, *INTEGRATIONS) == set()
    assert _under(modules, "merkle.signing") == {"merkle.signing", "merkle.signing.documents"}
    # hmac (0.2 ms): a verify that passed records its files' identities (merkle.hashing.identities)
    assert {"base64"} & modules == set()  # a checkpoint's leaves only where one is read
    assert (
        _under(
            modules,
            "merkle.building",
            "merkle.format.zarr",
            "merkle.format.origin",
            "merkle.cli.signing",
            "merkle.cli.trust",
            "merkle.cli.hf",
            "merkle.cli.partial",
        )
        == set()
    )


def test_a_signed_range_check_loads_no_x509(tmp_path, model_dir):
    from merkle.signing.keys import generate, write_keypair

    key = tmp_path / "k.key"
    write_keypair(str(key), generate())
    bundle = tmp_path / "b.json"
    merkle.sign(merkle.build(model_dir, chunk_size=4096), key, bundle, name="model", attestations=False)
    argv = ("verify", str(model_dir), str(bundle), "--key", f"{key}.pub", "--file", "model.safetensors")
    modules, run = _loaded(tmp_path, *argv, "--range", "0:8K")
    assert run.stdout.startswith("= model.safetensors [0, 8192)")
    assert "cryptography.hazmat.primitives.asymmetric.ec" in modules  # the signature was checked
    assert _under(modules, "cryptography.x509", "merkle.signing.certificates") == set()
    assert _under(modules, *HEAVY[1:], *INTEGRATIONS) == set()
    assert (
        _under(
            modules,
            "merkle.signing.oms",
            "merkle.signing.writing",
            "merkle.cli.signing",
            "merkle.building",
            "merkle.verifying.tree",  # the check of a tree, and the engine's checkpoints and listings
            "merkle.hashing.checkpoint",
            "merkle.source.listing",
            "merkle.verifying.single_file",
            "merkle.format.tensors",
        )
        == set()
    )
    assert {"getpass", "email", "socket"} & modules == set()


def test_every_public_name_is_listed_and_loads_on_first_use():
    assert set(merkle.__all__) <= set(dir(merkle))
    assert set(merkle.__all__) == set(merkle._LAZY)
