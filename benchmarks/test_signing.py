"""Signing and verifying the signature of a large manifest: what signing
adds beyond hashing (goal: under 1 s for 100,000 files, sign plus verify).

The manifest is synthetic (entries, not files): hashing is measured by the
other suites; this one times statement building, DSSE signing, bundle
parsing, signature checking and the strict re-validation of the manifest.
"""

from __future__ import annotations

import hashlib

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from merkle.format.manifest import FileEntry, Manifest
from merkle.signing import statements, trust
from merkle.signing.envelope import Bundle
from merkle.signing.keys import PrivateKey, generate

from .settings import Settings


@pytest.fixture(scope="module")
def large_manifest(settings: Settings) -> Manifest:
    count = 5_000 if settings.quick else 100_000
    entries = [
        FileEntry(
            f"shard-{i // 1000:04d}/part-{i:07d}.parquet",
            (i * 7919) % (1 << 20),
            hashlib.sha256(i.to_bytes(8, "big")).digest(),
        )
        for i in range(count)
    ]
    return Manifest.create(entries)


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return generate("ecdsa-p256")


def _rounds(settings: Settings) -> dict[str, int]:
    return {"rounds": settings.rounds, "iterations": 1, "warmup_rounds": settings.warmup}


def test_sign_large_manifest(
    benchmark: BenchmarkFixture, settings: Settings, large_manifest: Manifest, key: PrivateKey
) -> None:
    benchmark.extra_info["files"] = len(large_manifest.files)
    data = benchmark.pedantic(  # type: ignore[no-untyped-call]  # pytest-benchmark is untyped
        lambda: statements.sign(large_manifest, key, name="dataset").to_json(), **_rounds(settings)
    )
    assert Bundle.from_json(data).payload


def test_verify_large_manifest_signature(
    benchmark: BenchmarkFixture, settings: Settings, large_manifest: Manifest, key: PrivateKey
) -> None:
    data = statements.sign(large_manifest, key, name="dataset").to_json()
    policy = trust.TrustPolicy(keys=(key.public_key(),))
    benchmark.extra_info["files"] = len(large_manifest.files)
    benchmark.extra_info["bundle_bytes"] = len(data)

    def open_it() -> statements.Verified:
        return trust.decide([(Bundle.from_json(data, "bench"), "bench")], policy)

    verified = benchmark.pedantic(open_it, **_rounds(settings))  # type: ignore[no-untyped-call]
    assert verified.manifest == large_manifest
