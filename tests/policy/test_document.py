"""Policy files are parsed strictly: every mistake is one line naming the
file and the line (exit 2 through the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from merkle.errors import UsageError
from merkle.policy.document import load_policy

GOOD = """\
version: 1
name: release-gate
rules:
  signers:
    keys: [k1.pub, k2.pub]
    threshold: 2
  licenses:
    allow: [mit, Apache-2.0, other:my-license]
  age:
    signed_within: 90d
    expires: true
  files:
    forbid: [pickle, executable]
    allow: ["legacy/*.bin"]
    require: [model.safetensors]
  model_card:
    require: [license, tags]
  origin:
    repo_id: sentence-transformers/all-MiniLM-L6-v2
    repo_type: model
    revision: 0123456789abcdef0123456789abcdef01234567
  hashing:
    algorithms: [blake3]
    chunk_sizes: [1048576]
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    for key in ("k1.pub", "k2.pub"):  # the signer files a policy names are part of what it is (its digest)
        (tmp_path / key).write_text(f"{key}\n")
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_full_policy(tmp_path):
    p = load_policy(write(tmp_path, GOOD))
    assert p.name == "release-gate"
    assert p.rules == ("signers", "licenses", "age", "files", "model_card", "origin", "hashing")
    assert p.signers is not None and p.signers.threshold == 2
    assert p.signers.keys == (str(tmp_path / "k1.pub"), str(tmp_path / "k2.pub"))  # relative to the policy
    assert p.licenses == ("mit", "apache-2.0", "other:my-license")
    assert p.max_age == 90 * 86400 and p.require_expiry
    assert p.files is not None and p.files.forbid == ("pickle", "executable")
    assert p.origin is not None and p.origin.revision == "0123456789abcdef0123456789abcdef01234567"
    assert p.chunk_sizes == (1048576,)
    assert p.lines["licenses"] == 7


def test_the_same_policy_as_json(tmp_path):
    import yaml

    doc = yaml.safe_load(GOOD)
    p = load_policy(write(tmp_path, json.dumps(doc), "p.json"))
    assert p.rules == load_policy(write(tmp_path, GOOD)).rules


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD.replace("  licenses:", "  licences:"), "line 7: rules.unknown key 'licences'"),
        (GOOD.replace("threshold: 2", "threshold: two"), "line 6: rules.signers.threshold must be a positive integer"),
        (GOOD + "  licenses:\n    allow: [mit]\n", "is given twice (first on line 7)"),
        (GOOD.replace("forbid: [pickle, executable]", "forbid: [pickle, shellcode]"), "unknown kind 'shellcode'"),
        (GOOD.replace("version: 1", "version: 2"), "schema version 2 is not supported"),
        (GOOD.replace("version: 1\n", ""), "states its schema version"),
        ("version: 1\nrules: {}\n", "states no rule"),
        ("version: 1\nrules:\n  signers:\n    keys: []\n", "name keys or cas"),
        (GOOD.replace("signed_within: 90d", "signed_within: soon"), "not a duration"),
        (GOOD.replace("revision: 0123456789abcdef0123456789abcdef01234567", "revision: main"), "40-digit commit"),
        ("version: 1\nrules:\n  licenses: &a\n    allow: [mit]\n  model_card: *a\n", "aliases are not allowed"),
        ("version: 1\nrules: [a\n", "line 3: expected ','"),
        ("- just a list\n", "a mapping of rules"),
        (GOOD.replace("threshold: 2", "threshold: 3"), "threshold 3 is more than the 2 keys"),
    ],
)
def test_mistakes_are_one_error_naming_the_file_and_line(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as e:
        load_policy(path)
    assert needle in e.value.message, e.value.message
    assert e.value.path == str(path)


def test_a_rego_file_is_a_policy(tmp_path):
    rego = write(tmp_path, 'package merkle\n\ndeny contains "x" if { false }\n', "p.rego")
    p = load_policy(rego)
    assert p.rules == () and p.rego == ((str(rego), rego.read_text()),)


def test_cli_a_bad_policy_is_exit_2_before_anything_is_read(cli, tmp_path, model_dir):
    bad = write(tmp_path, GOOD.replace("  licenses:", "  licences:"))
    r = cli("verify", str(model_dir), str(tmp_path / "missing-bundle.json"), "--key", "k.pub", "--policy", str(bad))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "licences" in r.stderr and str(bad) in r.stderr and r.stdout == ""


def test_the_digest_is_what_the_policy_is(tmp_path):
    """A signed result names its policy by this digest: the file, its Rego
    modules and its signer files all count."""
    path = write(tmp_path, GOOD)
    first = load_policy(path).digest
    assert len(first) == 64 and load_policy(path).digest == first
    (tmp_path / "k2.pub").write_text("another key\n")
    assert load_policy(path).digest != first
