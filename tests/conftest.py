"""Fixtures every test shares.

tests/ mirrors merkle/: a module's tests sit in the folder of that module's package (tests/tree/,
tests/format/, ... tests/hf/, tests/zarr/, tests/cli/), the tests of top-level modules (the public API,
_native, building, dask) at the top; tests/project/ holds the repository's own gates (the README's
commands, lint, types); tests/support/ the helpers, imported as `support`."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest.register_assert_rewrite("support")  # before it is imported
from support.cli import run_cli  # noqa: E402

_HOME_VARIABLES = ("XDG_CACHE_HOME", "HF_HOME", "MERKLE_STORE", "MERKLE_CHECKPOINTS", "MERKLE_IDENTITIES")
_home = pytest.StashKey[tuple[str, dict[str, str | None]]]()


def pytest_configure(config: pytest.Config) -> None:
    """Each test process (pytest-xdist runs one per CPU) gets its own cache
    directories before anything is imported or started: what fixtures wider
    than a test (a module's signed bundle, a Hugging Face cache) and the
    programs they run would write under ~/.cache is the process's, never
    shared with another worker, another run or the user."""
    home = tempfile.mkdtemp(prefix="merkle-tests-")
    config.stash[_home] = home, {k: os.environ.get(k) for k in _HOME_VARIABLES}
    os.environ["XDG_CACHE_HOME"] = os.path.join(home, "cache")
    os.environ["HF_HOME"] = os.path.join(home, "cache", "huggingface")
    os.environ["MERKLE_STORE"] = os.path.join(home, "store")
    os.environ["MERKLE_CHECKPOINTS"] = os.path.join(home, "checkpoints")
    os.environ["MERKLE_IDENTITIES"] = os.path.join(home, "identities")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _home not in config.stash:
        return
    home, saved = config.stash[_home]
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(autouse=True)
def private_store(tmp_path, tmp_path_factory, monkeypatch):
    """Every test gets its own attestation store and checkpoint directory
    (children inherit the environment) and no key passphrase; nothing
    touches ~/.cache."""
    store = tmp_path / "store"
    monkeypatch.setenv("MERKLE_STORE", str(store))
    # Not under tmp_path: tests that a failed build leaves nothing beside its output list tmp_path.
    monkeypatch.setenv("MERKLE_CHECKPOINTS", str(tmp_path_factory.mktemp("checkpoints")))
    monkeypatch.setenv("MERKLE_IDENTITIES", str(tmp_path_factory.mktemp("identities")))
    monkeypatch.delenv("MERKLE_KEY_PASSPHRASE", raising=False)
    return store


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model-shaped tree: multi-chunk weights, small configs, a subdir,
    an empty file and a non-ASCII name."""
    d = tmp_path / "model"
    (d / "1_Pooling").mkdir(parents=True)
    (d / "config.json").write_text('{"hidden_size": 384}\n')
    (d / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}\n')
    (d / "model.safetensors").write_bytes(os.urandom(3 * 4096 + 17))
    (d / "empty.txt").write_bytes(b"")
    (d / "vocabulário.txt").write_text("a\nb\n", encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def endpoint():
    """A real S3 endpoint: moto's server on 127.0.0.1, with dummy credentials
    in the environment (children inherit them) for the module's tests."""
    moto_server = pytest.importorskip("moto.server")  # a test extra: CI runs these
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def direct(endpoint):
    """s3fs straight to moto, for setting up and for changing objects behind merkle's back."""
    s3fs = pytest.importorskip("s3fs")
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)


@pytest.fixture(scope="module")
def proxy(endpoint):
    """The fault-injecting proxy (support.s3proxy) in front of moto's server."""
    from support.s3proxy import FaultProxy

    p = FaultProxy(endpoint)
    yield p
    p.close()


@pytest.fixture
def faults(proxy):
    """The proxy, with no rule and an empty log, checked for its own failures after the test."""
    proxy.reset()
    yield proxy
    errors = list(proxy.errors)
    proxy.reset()
    assert not errors, errors[0]
