"""--sarif FILE: the policy's results as SARIF 2.1.0, valid against the
official schema (tests/fixtures/sarif), one result per rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from support import hf_layout
from support.cli import run_cli

SCHEMA = json.loads((Path(__file__).parents[1] / "fixtures" / "sarif" / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    d = tmp_path_factory.mktemp("sarif")
    model = d / "model"
    shutil.copytree(hf_layout.model_dir(), model)
    assert run_cli("keygen", "-o", str(d / "k")).returncode == 0
    r = run_cli("build", str(model), "--sign", str(d / "k"), "-o", str(d / "b.json"), "--no-store")
    assert r.returncode == 0, r.stderr
    (d / "deny.rego").write_text('package merkle\n\ndeny contains "no README license" if not input.license\n')
    (d / "p.yaml").write_text(
        "version: 1\nname: gate\nrules:\n  licenses:\n    allow: [mit]\n  hashing:\n    algorithms: [blake3]\n"
        "  rego: [deny.rego]\n"
    )
    return d, model


def test_sarif_is_valid_and_has_one_result_per_rule(signed):
    d, model = signed
    out = d / "results.sarif"
    r = run_cli("verify", str(model), str(d / "b.json"), "--key", str(d / "k.pub"), "--policy", str(d / "p.yaml"),
                "--sarif", str(out), "--no-store")  # fmt: skip
    assert r.returncode == 1, r.stderr
    log = json.loads(out.read_text())
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    (run,) = log["runs"]
    assert [x["id"] for x in run["tool"]["driver"]["rules"]] == [
        "merkle/licenses",
        "merkle/hashing",
        "merkle/rego:deny.rego",
    ]
    kinds = {x["ruleId"]: (x["kind"], x["level"]) for x in run["results"]}
    assert kinds == {
        "merkle/licenses": ("fail", "error"),
        "merkle/hashing": ("pass", "none"),
        "merkle/rego:deny.rego": ("pass", "none"),
    }
    failed = next(x for x in run["results"] if x["kind"] == "fail")
    assert "license 'apache-2.0' is not allowed" in failed["message"]["text"]
    assert failed["locations"][0]["physicalLocation"]["region"]["startLine"] == 4  # where the policy states it
    assert "AML.T0010.003" in run["tool"]["driver"]["rules"][0]["properties"]["tags"]
    # The same run again: the same fingerprints (dashboards follow the alert).
    again = d / "again.sarif"
    run_cli("verify", str(model), str(d / "b.json"), "--key", str(d / "k.pub"), "--policy", str(d / "p.yaml"),
            "--sarif", str(again), "--no-store")  # fmt: skip
    prints = [x["partialFingerprints"] for x in json.loads(again.read_text())["runs"][0]["results"]]
    assert prints == [x["partialFingerprints"] for x in run["results"]]


def test_no_sarif_when_the_policy_was_not_evaluated(signed, tmp_path):
    d, model = signed
    changed = tmp_path / "model"
    shutil.copytree(model, changed)
    (changed / "config.json").write_text("{}")
    out = tmp_path / "r.sarif"
    r = run_cli("verify", str(changed), str(d / "b.json"), "--key", str(d / "k.pub"), "--policy", str(d / "p.yaml"),
                "--sarif", str(out), "--no-store")  # fmt: skip
    assert r.returncode == 1 and not out.exists()
    r = run_cli("verify", str(model), str(d / "b.json"), "--key", str(d / "k.pub"), "--sarif", str(out))
    assert r.returncode == 2 and "--policy" in r.stderr and not out.exists()


def test_a_signed_result_is_kept_in_the_store_and_verifies(signed, tmp_path):
    """--sign: the SARIF log as an in-toto statement about the tree's signed
    root, kept in the store; `merkle policy show` verifies it (exit 1: the
    verdict it carries failed); another key, a changed byte, or using it as a
    statement of files each fail with one line."""
    d, model = signed
    store = tmp_path / "store"
    result = tmp_path / "result.json"
    r = run_cli("policy", "check", str(model), str(d / "b.json"), "--key", str(d / "k.pub"), "--policy",
                str(d / "p.yaml"), "--store", str(store), "--sign", str(d / "k"), "-o", str(result))  # fmt: skip
    assert r.returncode == 1 and result.exists(), r.stderr
    r = run_cli("store", "list", "--store", str(store), "--json")
    assert sorted(b["kind"] for b in json.loads(r.stdout)) == ["merkle", "policy-result"]
    r = run_cli("policy", "show", str(result), "--key", str(d / "k.pub"), "--store", str(store), "--json")
    assert r.returncode == 1, r.stderr
    log = json.loads(r.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert {x["ruleId"]: x["kind"] for x in log["runs"][0]["results"]}["merkle/licenses"] == "fail"
    statement = json.loads(__import__("base64").b64decode(json.loads(result.read_text())["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0"
    manifest_root = json.loads(run_cli("verify", str(model), str(d / "b.json"), "--key", str(d / "k.pub"),
                                       "--no-store", "--json").stdout)["root"]  # fmt: skip
    assert statement["subject"][0]["digest"] == {"merkle-blake3": manifest_root}
    assert run_cli("keygen", "-o", str(tmp_path / "other")).returncode == 0
    r = run_cli("policy", "show", str(result), "--key", str(tmp_path / "other.pub"), "--no-store")
    assert r.returncode == 1 and "signature does not verify" in r.stderr
    r = run_cli("verify", str(model), str(result), "--key", str(d / "k.pub"), "--no-store")
    assert r.returncode == 2 and "merkle policy show" in r.stderr and r.stderr.count("\n") == 1
    doc = json.loads(result.read_text())
    payload = bytearray(__import__("base64").b64decode(doc["dsseEnvelope"]["payload"]))
    payload[payload.index(b'"fail"') + 1] = ord("p")  # "fail" -> "pail": the verdict edited
    doc["dsseEnvelope"]["payload"] = __import__("base64").b64encode(bytes(payload)).decode()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    r = run_cli("policy", "show", str(forged), "--key", str(d / "k.pub"), "--no-store")
    assert r.returncode == 1 and "signature does not verify" in r.stderr


def test_policy_show_answers_only_the_question_asked(signed, tmp_path):
    """A verified result of another policy, another tree or an old run does
    not pass `policy show --policy/--root/--max-age` (a review found any
    passing result passing)."""
    d, model = signed
    passing = tmp_path / "passing.yaml"
    passing.write_text("version: 1\nrules:\n  hashing:\n    algorithms: [blake3]\n")
    result = tmp_path / "r.json"
    r = run_cli("policy", "check", str(model), str(d / "b.json"), "--key", str(d / "k.pub"), "--policy", str(passing),
                "--no-store", "--sign", str(d / "k"), "-o", str(result), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    root = json.loads(r.stdout)["root"]
    show = ["policy", "show", str(result), "--key", str(d / "k.pub"), "--no-store"]
    assert run_cli(*show, "--policy", str(passing), "--root", root, "--max-age", "1d").returncode == 0
    r = run_cli(*show, "--policy", str(d / "p.yaml"))
    assert r.returncode == 1 and "another policy" in r.stderr
    r = run_cli(*show, "--root", "00" * 32)
    assert r.returncode == 1 and "not 0000000000000000" in r.stderr
    r = run_cli(*show, "--max-age", "0m")
    assert r.returncode == 1 and "more than --max-age" in r.stderr
