"""`--name NAME` and `--min-version N` on verify and run (TrustPolicy.subjects, .min_version; docs/signing.md V8):
whoever can write the model folder can put there another model's files with that model's valid bundle from the
same signer, or an older release with its own valid bundle; without these the swap verifies, with them it is
refused on the trust path, before any file is read, and `merkle run` never starts its command."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import assert_one_line_error, run_cli

import merkle
from merkle.errors import PolicyError


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> tuple[Path, dict[str, tuple[Path, Path]]]:
    """The public key and {label: (tree, bundle)} for model 'base' v1 and v2 and model 'other' (unversioned),
    all signed by one key."""
    d = tmp_path_factory.mktemp("releases")
    assert run_cli("keygen", "-o", str(d / "k")).returncode == 0
    out = {}
    for label, name, version, content in (("v1", "base", "1", b"one"), ("v2", "base", "2", b"two"),
                                          ("other", "other", None, b"another model")):  # fmt: skip
        tree = d / label
        tree.mkdir()
        (tree / "weights.bin").write_bytes(content * 1000)
        extra = ("--version", version) if version else ()
        r = run_cli("build", str(tree), "--sign", str(d / "k"), "-o", str(d / f"{label}.json"), "--name", name,
                    "--no-store", *extra)  # fmt: skip
        assert r.returncode == 0, r.stderr
        out[label] = (tree, d / f"{label}.json")
    return d / "k.pub", out


def verify(pub: Path, tree: Path, bundle: Path, *extra: str):
    return run_cli("verify", str(tree), str(bundle), "--key", str(pub), "--no-store", *extra)


def test_another_models_bundle_passes_without_a_name_and_fails_with_it(releases):
    pub, r = releases
    tree, bundle = r["other"]
    assert verify(pub, tree, bundle).returncode == 0  # what the attacker relies on
    result = verify(pub, tree, bundle, "--name", "base")
    assert result.returncode == 1
    assert_one_line_error(result, "'other'", "'base'")
    assert result.stdout == ""
    assert verify(pub, *r["v2"], "--name", "base").returncode == 0


@pytest.mark.parametrize(("label", "code"), [("v1", 1), ("v2", 0), ("other", 1)])
def test_min_version(releases, label, code):
    pub, r = releases
    result = verify(pub, *r[label], "--min-version", "2")
    assert result.returncode == code, result.stdout + result.stderr
    if code:
        assert_one_line_error(result, "version 2 or later")


def test_run_never_starts_the_command_for_another_model(releases, tmp_path):
    pub, r = releases
    tree, bundle = r["other"]
    marker = tmp_path / "started"
    result = run_cli("run", str(bundle), "--key", str(pub), "--no-store", "--name", "base", str(tree), "--", "sh",
                     "-c", f"echo started > {marker}")  # fmt: skip
    assert result.returncode == 1
    assert not marker.exists()
    result = run_cli("run", str(bundle), "--key", str(pub), "--no-store", "--name", "other", str(tree), "--", "sh",
                     "-c", f"echo started > {marker}")  # fmt: skip
    assert result.returncode == 0 and marker.exists()


def test_the_library_takes_the_same_decision(releases):
    pub, r = releases
    tree, bundle = r["other"]
    with pytest.raises(PolicyError, match="'other'"):
        merkle.verify_signed(tree, [bundle], keys=[pub], attestations=False, subject="base")
    with pytest.raises(PolicyError, match="version 3 or later"):
        merkle.verify_signed(r["v2"][0], [r["v2"][1]], keys=[pub], attestations=False, min_version=3)
    verified, report = merkle.verify_signed(
        r["v2"][0], [r["v2"][1]], keys=[pub], attestations=False, subject="base", min_version=2
    )
    assert report.ok and verified.name == "base" and verified.version == 2


def test_an_unsigned_manifest_has_no_name_to_check(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a").write_bytes(b"a")
    assert run_cli("build", str(tmp_path / "t"), "-o", str(tmp_path / "m.json"), "-q").returncode == 0
    result = run_cli("verify", str(tmp_path / "t"), str(tmp_path / "m.json"), "--name", "t")
    assert result.returncode == 2
    assert_one_line_error(result, "--name")


def test_a_keyword_never_loosens_a_given_policy(releases):
    """Found by the read-through: subject= replaced the policy's subjects, a lower min_version= its floor."""
    from merkle.errors import UsageError
    from merkle.verifying.signed import policy_from_files

    pub, r = releases
    policy = policy_from_files([pub], subjects=["base"], min_version=2)
    with pytest.raises(UsageError, match="'other'"):
        merkle.verify_signed(*r["other"][:1], [r["other"][1]], policy=policy, attestations=False, subject="other")
    with pytest.raises(PolicyError, match="version 2 or later"):
        merkle.verify_signed(r["v1"][0], [r["v1"][1]], policy=policy, attestations=False, min_version=1)
