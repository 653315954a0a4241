"""Signing and verifying the signature of a large manifest: what signing
adds beyond hashing (goal: under 1 s for 100,000 files, sign plus verify).

The manifest is synthetic (entries, not files): hashing is measured by the
other suites; this one times statement building, DSSE signing, bundle
parsing, signature checking and the strict re-validation of the manifest.
"""

from __future__ import annotations

import hashlib

import pytest

from merkle.format.manifest import FileEntry, Manifest
from merkle.signing import statements, trust
from merkle.signing.envelope import Bundle
from merkle.signing.keys import generate


@pytest.fixture(scope="module")
def large_manifest(settings):
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
def key():
    return generate("ecdsa-p256")


def _rounds(settings):
    return {"rounds": settings.rounds, "iterations": 1, "warmup_rounds": settings.warmup}


def test_sign_large_manifest(benchmark, settings, large_manifest, key):
    benchmark.extra_info["files"] = len(large_manifest.files)
    data = benchmark.pedantic(
        lambda: statements.sign(large_manifest, key, name="dataset").to_json(), **_rounds(settings)
    )
    assert Bundle.from_json(data).payload


def test_verify_large_manifest_signature(benchmark, settings, large_manifest, key):
    data = statements.sign(large_manifest, key, name="dataset").to_json()
    policy = trust.TrustPolicy(keys=(key.public_key(),))
    benchmark.extra_info["files"] = len(large_manifest.files)
    benchmark.extra_info["bundle_bytes"] = len(data)

    def open_it():
        return trust.decide([(Bundle.from_json(data, "bench"), "bench")], policy)

    verified = benchmark.pedantic(open_it, **_rounds(settings))
    assert verified.manifest == large_manifest
