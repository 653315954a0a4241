"""Options travel as small frozen objects; the facades' keywords are their
fields, spelled once each."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import merkle
from merkle.building import BuildOptions, build_with
from merkle.errors import UsageError
from merkle.hashing.options import HashOptions
from merkle.source.listing import WalkOptions
from merkle.verifying.tree import CheckOptions, verify_with


def fields(*kinds: type) -> set[str]:
    return {f.name for kind in kinds for f in dataclasses.fields(kind)}


def keywords(function: object) -> set[str]:
    return {p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY}


def test_the_facades_take_exactly_the_options_fields():
    # update: OLD, what a build may reuse, neither recorded nor how hashing runs (verify never takes it)
    assert keywords(merkle.build) == fields(BuildOptions, WalkOptions, HashOptions) | {"update"}
    assert keywords(merkle.verify) == fields(CheckOptions, WalkOptions, HashOptions)
    assert not fields(BuildOptions) & fields(WalkOptions) & fields(HashOptions)
    assert not fields(CheckOptions) & fields(WalkOptions) & fields(HashOptions)


@pytest.mark.parametrize("kind", [BuildOptions, WalkOptions, HashOptions, CheckOptions])
def test_options_are_frozen(kind):
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(kind(), dataclasses.fields(kind)[0].name, None)


def test_the_keywords_and_the_objects_build_the_same_manifest(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x" * 5000)
    (tmp_path / "d" / "skip").write_bytes(b"y")
    by_keywords = merkle.build(tmp_path / "d", chunk_size=1024, exclude=["skip"], jobs=2)
    by_objects = build_with(tmp_path / "d", BuildOptions(chunk_size=1024, exclude=("skip",)), hashing=HashOptions(2))
    assert by_keywords.to_json() == by_objects.to_json()
    (tmp_path / "d" / "new").write_bytes(b"z")
    assert not verify_with(tmp_path / "d", by_objects)  # new is extra
    assert verify_with(tmp_path / "d", by_objects, CheckOptions(exclude=("new",)))
    assert merkle.verify(tmp_path / "d", by_objects, exclude=["new"])


def test_options_are_checked_when_made():
    with pytest.raises(UsageError, match="checkpoint and resume take True or False"):
        HashOptions(checkpoint="state.json")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="keeps no checkpoint"):
        HashOptions(resume=True, cluster=object())  # type: ignore[arg-type]
    with pytest.raises(merkle.FormatError, match="chunk size"):
        BuildOptions(chunk_size=1000)
    with pytest.raises(merkle.UnsupportedError):
        BuildOptions(algorithm="md5")  # type: ignore[arg-type]
    assert CheckOptions(exclude=["a"], only=["b"]) == CheckOptions(exclude=("a",), only=("b",))  # type: ignore[arg-type]


def test_verify_signed_takes_verify_s_keywords_and_no_others(tmp_path):
    from merkle.signing.keys import generate

    policy = merkle.TrustPolicy(keys=(generate().public_key(),))
    with pytest.raises(TypeError, match="unexpected keyword argument 'sparce'"):
        merkle.verify_signed(tmp_path, [tmp_path / "b.json"], policy=policy, sparce=True)
    with pytest.raises(merkle.SourceError):  # the keyword is taken: the missing bundle is what fails
        merkle.verify_signed(tmp_path, [tmp_path / "b.json"], policy=policy, sparse=True, jobs=1)
