"""Dask: the same manifest, byte for byte, from a LocalCluster of worker
processes, for local trees and for objects in a real (moto) S3 server."""

from __future__ import annotations

import json
import os

import pytest

import merkle
from merkle.dask import DaskCluster

distributed = pytest.importorskip("distributed")  # installed by the test extras; CI runs these


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def tree(root):
    root.mkdir()
    for i in range(40):  # many small objects, batched
        (root / f"small-{i:02d}.bin").write_bytes(os.urandom(100 * i))
    (root / "sub").mkdir()
    (root / "sub" / "large.bin").write_bytes(os.urandom(200 * 4096 + 5))  # split into range tasks
    (root / "empty").write_bytes(b"")
    return root


def test_local_tree_identical_to_single_machine(client, tmp_path):
    d = tree(tmp_path / "d")
    on_cluster = merkle.build(d, chunk_size=4096, cluster=DaskCluster(client))
    alone = merkle.build(d, chunk_size=4096)
    assert on_cluster.to_json() == alone.to_json()
    assert on_cluster.layers.to_bytes(on_cluster) == alone.layers.to_bytes(alone)
    assert merkle.verify(d, alone, cluster=DaskCluster(client))
    (d / "sub" / "large.bin").write_bytes(os.urandom(200 * 4096 + 5))
    report = merkle.verify(d, alone, cluster=DaskCluster(client))
    assert [o.path for o in report.failures] == ["sub/large.bin"]


def test_s3_prefix_identical_to_single_machine(client, tmp_path, monkeypatch):
    s3fs = pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    # the workers were started before these variables: they travel in storage options
    creds = {"key": "testing", "secret": "testing"}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"client_kwargs": {"endpoint_url": f"http://{host}:{port}"}, **creds}
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        fs.mkdir("dask-bucket")
        local = tree(tmp_path / "d")
        for path in sorted(local.rglob("*")):
            if path.is_file():
                fs.pipe(f"dask-bucket/data/{path.relative_to(local).as_posix()}", path.read_bytes())
        on_cluster = merkle.build(
            "s3://dask-bucket/data", chunk_size=4096, storage_options=options, cluster=DaskCluster(client)
        )
        alone = merkle.build("s3://dask-bucket/data", chunk_size=4096, storage_options=options)
        assert on_cluster.to_json() == alone.to_json()
        assert on_cluster.root == merkle.build(local, chunk_size=4096).root
    finally:
        server.stop()


def test_cli_dask_local(cli, tmp_path):
    d = tree(tmp_path / "d")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    r = cli("build", str(d), "-o", str(a), "--chunk-size", "4K", "--dask", "local", timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert cli("build", str(d), "-o", str(b), "--chunk-size", "4K").returncode == 0
    assert a.read_bytes() == b.read_bytes()
    assert json.loads(a.read_text())["files"]
