"""The license policy (docs/hf.md L1-L4): the license is read from the verified README's front matter only,
allowed or refused by SPDX id, missing or broken cards fail closed; `merkle hf verify`, `merkle verify` and the
Python API (`check_license`, `readme_license`) agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import hf_layout as hl
from support.cli import assert_one_line_error, run_cli, statuses
from support.hf import (
    README,
    SPARSE,
    error_lines,
    fresh_cache,
    fresh_local,
    hf,
)

from merkle.errors import FormatError, IntegrityError, PolicyError, UsageError
from merkle.format.manifest import Manifest
from merkle.hf import check_license, hub_readme_license, readme_license, verify_checkout
from merkle.hf.license import front_matter, parse_allowed

# --------------------------------------------------------------------------------------------------------------------
# 6. License policy (L1-L4)


def license_run(kind: str, layout: hl.CacheLayout, tmp_path: Path, *allowed: str, manifest: Path | None = None):
    """`merkle hf verify --allow-license` or `merkle verify <manifest> --allow-license` on the cache."""
    opts = [a for ids in allowed for a in ("--allow-license", ids)]
    if kind == "hf":
        return hf(layout.repo_folder, *opts)
    if manifest is None:
        manifest = tmp_path / "card.json"
        r = run_cli("build", str(layout.repo_folder), "-o", str(manifest))
        assert r.returncode == 0, r.stderr
    return run_cli("verify", str(layout.repo_folder), str(manifest), *opts)


KINDS = ["hf", "manifest"]


@pytest.mark.parametrize("kind", KINDS)
def test_license_allowed(cache, tmp_path, kind, cache_manifest):
    r = license_run(kind, cache, tmp_path, "mit,apache-2.0", manifest=cache_manifest)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "license apache-2.0 allowed" in r.stderr
    r = license_run(kind, cache, tmp_path, "MIT", "Apache-2.0", manifest=cache_manifest)  # L4: case, repeatable
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_license_refused(cache, tmp_path, kind, cache_manifest):
    r = license_run(kind, cache, tmp_path, "mit", manifest=cache_manifest)
    assert r.returncode == 1
    (line,) = error_lines(r)
    assert README in line and "apache-2.0" in line


def test_license_json(cache):
    r = hf(cache.repo_folder, "--allow-license", "apache-2.0", "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["license"] == {"checked": True, "ok": True, "licenses": ["apache-2.0"]}
    r = hf(cache.repo_folder, "--allow-license", "mit", "--json")
    assert r.returncode == 1
    lic = json.loads(r.stdout)["license"]
    assert lic["checked"] is True and lic["ok"] is False and README in lic["error"]


@pytest.mark.parametrize("kind", KINDS)
def test_license_other_uses_license_name(tmp_path, card_repos, kind):
    layout = fresh_cache(tmp_path, card_repos("other"))
    r = license_run(kind, layout, tmp_path, "other:my-license")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "license other:my-license allowed" in r.stderr
    # Neither `other` nor the bare name allows it: a custom license never passes for a standard-looking id (L2).
    for allowed in ("other,apache-2.0", "my-license"):
        r = license_run(kind, layout, tmp_path, allowed, manifest=tmp_path / "card.json")
        assert r.returncode == 1
        assert "other:my-license" in error_lines(r)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_license_missing_fails_closed(tmp_path, card_repos, kind):
    layout = fresh_cache(tmp_path, card_repos("none"))
    r = license_run(kind, layout, tmp_path, "mit,apache-2.0,other")
    assert r.returncode == 1
    (line,) = error_lines(r)
    assert README in line and "no license" in line


@pytest.mark.parametrize("kind", KINDS)
def test_license_broken_front_matter_is_format_error(tmp_path, card_repos, kind):
    layout = fresh_cache(tmp_path, card_repos("broken"))
    r = license_run(kind, layout, tmp_path, "apache-2.0")
    assert r.returncode == 2
    (line,) = error_lines(r)
    assert README in line and "YAML" in line


@pytest.mark.parametrize("kind", KINDS)
def test_license_not_read_from_unverified_readme(tmp_path, repo, kind, cache_manifest):
    layout = fresh_cache(tmp_path, repo)
    hl.corrupt(layout.blob_path(README), 0)  # '---' becomes garbage: it would fail closed if read
    r = license_run(kind, layout, tmp_path, "apache-2.0", manifest=cache_manifest)
    assert r.returncode == 1
    assert statuses(r.stdout)[README] == "*"
    assert "license not checked" in r.stderr
    assert error_lines(r) == []


def test_license_not_checked_json(tmp_path, repo):
    layout = fresh_cache(tmp_path, repo)
    hl.corrupt(layout.blob_path(README), 0)
    r = hf(layout.repo_folder, "--allow-license", "apache-2.0", "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["license"] == {"checked": False}


def test_license_sparse_without_readme_fails_closed(tmp_path, repo, bundle, key):
    layout = fresh_local(tmp_path, repo, files=("config.json", "modules.json"))
    r = hf(layout.local_dir, "--allow-license", "apache-2.0")
    assert r.returncode == 1
    assert len(error_lines(r)) == 1 and README in error_lines(r)[0]
    r = run_cli(
        "verify", str(layout.local_dir), str(bundle), "--key", f"{key}.pub", "--sparse", "--allow-license", "apache-2.0"
    )
    assert r.returncode == 1
    assert len(error_lines(r)) == 1 and README in error_lines(r)[0]


def test_license_with_signed_bundle(tmp_path, repo, bundle, key):
    layout = fresh_local(tmp_path, repo, files=SPARSE)
    base = ["verify", str(layout.local_dir), str(bundle), "--key", f"{key}.pub", "--sparse"]
    r = run_cli(*base, "--allow-license", "mit,apache-2.0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "license apache-2.0 allowed" in r.stderr
    r = run_cli(*base, "--allow-license", "mit")
    assert r.returncode == 1
    assert README in error_lines(r)[0]


def test_license_readme_not_in_manifest(tmp_path, cache):
    manifest = tmp_path / "m.json"
    r = run_cli("build", str(cache.repo_folder), "--exclude", README, "-o", str(manifest))
    assert r.returncode == 0, r.stderr
    r = run_cli("verify", str(cache.repo_folder), str(manifest), "--allow-license", "apache-2.0")
    assert r.returncode == 1
    (line,) = error_lines(r)
    assert README in line and "manifest" in line


@pytest.mark.parametrize("ids", ["mit;rm -rf", "", "MIT License"])
def test_license_bad_allowed_id_is_usage_error(cache, ids):
    r = hf(cache.repo_folder, "--allow-license", ids)
    assert r.returncode == 2
    assert_one_line_error(r)


def test_license_python_api_reads_only_verified_bytes(tmp_path, repo, cache_manifest):
    """L1: the bytes parsed are checked again; a README swapped after verification is not read."""
    layout = fresh_cache(tmp_path, repo)
    report = verify_checkout(layout.repo_folder)
    assert report.ok and report.checkout is not None
    assert hub_readme_license(report.checkout, ("apache-2.0",)) == ("apache-2.0",)
    manifest = Manifest.load(str(cache_manifest))
    assert readme_license(layout.repo_folder, manifest, ("apache-2.0",)) == ("apache-2.0",)
    with pytest.raises(PolicyError):
        hub_readme_license(report.checkout, ("mit",))
    hl.corrupt(layout.blob_path(README), 0)  # swapped after the tree verified
    with pytest.raises(IntegrityError):
        hub_readme_license(report.checkout, ("apache-2.0",))
    with pytest.raises(IntegrityError):
        readme_license(layout.repo_folder, manifest, ("apache-2.0",))


@pytest.mark.parametrize(
    ("card", "allowed", "expected"),
    [
        (b"---\nlicense: mit\n---\n# Model\n", ("mit",), ("mit",)),
        (b"---\nlicense: MIT\n---\n", ("mit",), ("mit",)),
        (b"\xef\xbb\xbf---\nlicense: mit\n---\n", ("mit",), ("mit",)),  # BOM
        (b"---\r\nlicense: apache-2.0\r\nlanguage: en\r\n---\r\n# Model\r\n", ("apache-2.0",), ("apache-2.0",)),
        (b"---\nlicense:\n- mit\n- apache-2.0\n---\n", ("apache-2.0", "mit"), ("mit", "apache-2.0")),
        (b"---\nlicense: other\nlicense_name: my-license\n---\n", ("other:my-license",), ("other:my-license",)),
        (b"---\nlicense: other\n---\n", ("other",), ("other",)),
    ],
)
def test_check_license_accepts(card, allowed, expected):
    assert check_license(card, allowed) == expected


@pytest.mark.parametrize(
    ("card", "allowed"),
    [
        (b"---\nlicense:\n- mit\n- apache-2.0\n---\n", ("mit",)),  # a list must be allowed in full
        (b"# Model\n\nlicense: mit\n", ("mit",)),  # no front matter
        (b"---\n---\n# Model\n", ("mit",)),  # empty front matter
        (b"---\nlanguage: en\n---\n", ("mit",)),  # no license key
        (b"---\nlicense: ''\n---\n", ("mit",)),
        (b"---\nlicense: other\n---\n", ("my-license",)),  # `other` without license_name is just `other`
        (b"---\nlicense: other\nlicense_name: my-license\n---\n", ("other",)),
        (b"---\nlicense: other\nlicense_name: mit\n---\n", ("mit",)),  # a custom license named like a standard one
        (b"", ("mit",)),
    ],
)
def test_check_license_refuses(card, allowed):
    with pytest.raises(PolicyError):
        check_license(card, allowed)


@pytest.mark.parametrize(
    "card",
    [
        b"---\nlicense: [mit\n---\n",  # not YAML
        b"---\n- mit\n- apache-2.0\n---\n",  # not a mapping
        b"---\nlicense: \xff\xfe\n---\n",  # not UTF-8
        b"---\nlicense: 5\n---\n",  # not an id
        b"---\nlicense: !!python/object/apply:os.system ['true']\n---\n",  # safe loader only
    ],
)
def test_check_license_format_errors(card):
    with pytest.raises(FormatError) as e:
        check_license(card, ("mit",))
    assert e.value.path == README


def test_front_matter():
    assert front_matter(b"---\nlicense: mit\ntags:\n- a\n---\nbody\n---\n") == {"license": "mit", "tags": ["a"]}
    assert front_matter(b"no front matter\n") == {}
    assert front_matter(b"---\n---\n") == {}
    assert front_matter(b"\xef\xbb\xbf---\r\nlicense: mit\r\n---\r\n") == {"license": "mit"}
    assert front_matter((hl.model_dir() / README).read_bytes())["license"] == "apache-2.0"


def test_parse_allowed():
    assert parse_allowed("mit,apache-2.0") == ("mit", "apache-2.0")
    assert parse_allowed(["MIT, Apache-2.0", "mit", "cc-by-4.0"]) == ("mit", "apache-2.0", "cc-by-4.0")
    for bad in ("", " , ", "mit;rm", "MIT License", "-mit"):
        with pytest.raises(UsageError):
            parse_allowed(bad)


@pytest.mark.parametrize(
    ("card", "needle"),
    [
        (b"---\nlicense: gpl-3.0\nlicense: mit\n---\n", "'license' is given twice"),
        (b"---\na: &x [1, 2]\nb: [*x, *x, *x]\n---\n", "aliases are not allowed"),
    ],
)
def test_a_card_a_reader_and_a_loader_would_read_differently_is_refused(card, needle):
    """A key given twice (a reader sees the first, a loader keeps the last)
    and aliases (a few hundred bytes that expand without bound) are refused."""
    from merkle.errors import FormatError
    from merkle.hf.license import front_matter

    with pytest.raises(FormatError, match=needle):
        front_matter(card)
