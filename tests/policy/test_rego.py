"""Custom rules in Rego, evaluated in-process-safe by the real regopy in a
child process: a policy denies a pickle file and a wrong license on the real
model; its errors are one line naming the file and line; built-ins that read
the machine are refused before anything runs."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile

import pytest
from support import hf_layout
from support.cli import assert_one_line_error, run_cli

from merkle.errors import UsageError
from merkle.policy import rego

POLICY = """package merkle

import rego.v1

# No pickle, whatever the file is called.
deny contains msg if {
    some f in input.files
    f.kind == "pickle"
    msg := sprintf("%s is a pickle", [f.path])
}

deny contains msg if {
    not input.license in {"mit", "bsd-3-clause"}
    msg := sprintf("license %s is not allowed", [input.license])
}

deny contains "signed by nobody" if count(input.signers) == 0
"""


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    d = tmp_path_factory.mktemp("rego")
    model = d / "model"
    shutil.copytree(hf_layout.model_dir(), model)
    with zipfile.ZipFile(model / "extra.ckpt", "w") as z:
        z.writestr("ckpt/data.pkl", pickle.dumps([1, 2], protocol=2))
    assert run_cli("keygen", "-o", str(d / "k")).returncode == 0
    r = run_cli("build", str(model), "--sign", str(d / "k"), "-o", str(d / "b.json"), "--no-store")
    assert r.returncode == 0, r.stderr
    return d, model


def verify(signed, policy_path, *extra):
    d, model = signed
    return run_cli("verify", str(model), str(d / "b.json"), "--key", str(d / "k.pub"), "--policy", str(policy_path),
                   "--no-store", *extra)  # fmt: skip


def test_a_rego_policy_denies_a_pickle_and_a_wrong_license(signed, tmp_path):
    p = tmp_path / "policy.rego"
    p.write_text(POLICY)
    r = verify(signed, p, "--json")
    assert r.returncode == 1, r.stderr
    (result,) = json.loads(r.stdout)["policy"]["results"]
    assert result == {
        "rule": "rego:policy.rego",
        "passed": False,
        "violations": ["extra.ckpt is a pickle", "license apache-2.0 is not allowed"],
    }
    r = verify(signed, p)
    assert r.returncode == 1
    assert "extra.ckpt is a pickle" in r.stderr and "license apache-2.0 is not allowed" in r.stderr


def test_a_passing_rego_policy_beside_built_in_rules(signed, tmp_path):
    (tmp_path / "ok.rego").write_text(POLICY.replace('{"mit", "bsd-3-clause"}', '{"apache-2.0"}').replace(
        'f.kind == "pickle"', 'f.kind == "executable"'))  # fmt: skip
    p = tmp_path / "p.yaml"
    p.write_text("version: 1\nrules:\n  licenses:\n    allow: [apache-2.0]\n  rego: [ok.rego]\n")
    r = verify(signed, p, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    rules = [x["rule"] for x in json.loads(r.stdout)["policy"]["results"]]
    assert rules == ["licenses", "rego:ok.rego"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("package merkle\n\ndeny contains msg if {\n    msg := \n}\n", "line 4"),
        ("package other\n\ndeny contains 1 if true\n", "package merkle"),
        ("package merkle\n\nallow := true\n", "no deny rule"),
        ("package merkle\n\ndeny contains x if {\n  x := opa.runtime().env.HOME\n}\n", "line 4: built-in opa.runtime"),
        ('package merkle\n\n# print(x) in a comment is fine\ndeny contains "t" if time.now_ns() > 0\n', "line 4"),
    ],
)
def test_a_bad_module_is_exit_2_one_line_naming_the_file(signed, tmp_path, text, needle):
    p = tmp_path / "bad.rego"
    p.write_text(text)
    r = verify(signed, p)
    assert r.returncode == 2
    assert_one_line_error(r, str(p), needle)
    assert r.stdout == ""


def test_comments_and_strings_do_not_trip_the_built_in_check():
    rego.check_module("p.rego", 'package merkle\n# print(1)\ndeny contains "print(x) is text" if false\n')
    with pytest.raises(UsageError, match="line 3: built-in print"):
        rego.check_module("p.rego", 'package merkle\ndeny contains "x" if {\n  print("a")\n}\n')


def test_the_child_sees_no_environment_and_its_output_is_not_ours(monkeypatch):
    """Evaluated in a child with a minimal environment: a secret in ours is
    not there (opa.runtime is refused anyway; env is checked through the
    one built-in left that could show it: none, so through a deny that
    would leak it if the document carried it)."""
    monkeypatch.setenv("MERKLE_TEST_SECRET", "s3cr3t")
    (deny,) = rego.evaluate([("p.rego", "package merkle\ndeny contains x if { x := input.a }\n")], {"a": 'é " \\ ok'})
    assert deny == ['é " \\ ok']


def test_a_merkle_package_in_the_current_folder_does_not_stand_in_for_the_child(tmp_path, monkeypatch):
    """The child runs by its absolute path, isolated, in an empty folder: a
    `merkle/` package where merkle runs (a model folder, a checkout) is not
    imported in its place."""
    fake = tmp_path / "merkle" / "policy"
    fake.mkdir(parents=True)
    (tmp_path / "merkle" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    marker = tmp_path / "HIJACKED"
    (fake / "_rego_child.py").write_text(f'open({str(marker)!r}, "w").write("x")\nprint(\'{{"deny": []}}\')\n')
    monkeypatch.chdir(tmp_path)
    (deny,) = rego.evaluate([("p.rego", 'package merkle\ndeny contains "always" if true\n')], {})
    assert deny == ["always"] and not marker.exists()


def test_a_raw_string_across_lines_does_not_hide_a_refused_built_in():
    with pytest.raises(UsageError, match="line 3: built-in opa.runtime"):
        rego.check_module("p.rego", 'package merkle\ns := `\n`; t := opa.runtime()\ndeny contains "x" if false\n')


def test_a_module_that_runs_too_long_is_stopped_with_one_line():
    slow = 'package merkle\nimport rego.v1\ndeny contains "x" if { count(numbers.range(1, 100000000)) > 0 }\n'
    with pytest.raises(UsageError, match="longer than 1 s|more than"):
        rego.evaluate([("slow.rego", slow)], {}, timeout=1)


AWKWARD = ['a"b', "a\\b", 'a\\"b', "line\nbreak", "tab\there", "\x01", "nul\x00byte", "é✓", "\u2028", "a/b", ""]


def test_every_string_reaches_the_policy_as_written():
    """Each string of the input document is the string a module's literal
    spells (the input is built item by item, JSON-escaped as rego-cpp keeps
    strings): equal to the literal, and back out unchanged."""
    document = {"files": [{"path": s, "size": i, "kind": "other"} for i, s in enumerate(AWKWARD)]}
    literals = ", ".join(json.dumps(s, ensure_ascii=False) for s in AWKWARD)
    module = f"""package merkle
import rego.v1
expected := [{literals}]
deny contains sprintf("out %s", [f.path]) if some f in input.files
deny contains sprintf("equal %d", [f.size]) if {{
    some f in input.files
    f.path == expected[f.size]
}}
"""
    (deny,) = rego.evaluate([("p.rego", module)], document)
    assert sorted(deny) == sorted([f"out {s}" for s in AWKWARD] + [f"equal {i}" for i in range(len(AWKWARD))])


def test_numbers_booleans_null_and_nesting_keep_their_types():
    document = {"a": [1, -(1 << 62), 2.5, True, False, None, {"b": {"c": []}}], 'k"ey': 1}
    module = """package merkle
import rego.v1
deny contains "int" if input.a[0] + 1 == 2
deny contains "big" if input.a[1] < 0
deny contains "float" if input.a[2] * 2 == 5
deny contains "bools" if { input.a[3] == true; input.a[4] == false }
deny contains "null" if is_null(input.a[5])
deny contains "nested" if count(input.a[6].b.c) == 0
deny contains "key" if input["k\\"ey"] == 1
"""
    (deny,) = rego.evaluate([("p.rego", module)], document)
    assert sorted(deny) == sorted(["int", "big", "float", "bools", "null", "nested", "key"])
