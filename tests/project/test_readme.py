"""The README's two commands are the project's contract with a fresh machine;
CI proves the second by running it from .ci/run, so the two must not drift."""

import subprocess
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = text.split("```sh\n")[1:3]
    return [b.split("\n```", 1)[0].strip() for b in blocks]


def test_readme_opens_with_two_commands():
    demo, tests = _readme_commands()
    assert demo.endswith("merkle demo")
    assert tests == "scripts/test"


def test_the_test_entry_point_runs_pytest_over_tests():
    script = (ROOT / "scripts" / "test").read_text()
    assert script.rstrip().splitlines()[-1].startswith('exec "$venv/bin/python" -m pytest tests -q')
    assert (ROOT / "scripts" / "test").stat().st_mode & 0o111, "scripts/test must be executable"
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "test")]).returncode == 0


def test_ci_runs_the_readme_test_command_verbatim():
    _, tests = _readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines


def test_distribution_name_is_the_one_install_hints_use():
    from merkle.errors import DISTRIBUTION, install_hint

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION != "merkle"  # `merkle` on the index is an unrelated 2017 package
    assert install_hint("zarr") == f"pip install '{DISTRIBUTION}[zarr]'"
    assert "zarr" in project["optional-dependencies"]
    assert project["scripts"] == {"merkle": "merkle.cli:main"}
