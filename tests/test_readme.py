"""The README's two commands are the project's contract with a fresh machine;
CI proves the second by running it from .ci/run, so the two must not drift."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = text.split("```sh\n")[1:3]
    return [b.split("\n```", 1)[0].strip() for b in blocks]


def test_readme_opens_with_two_commands():
    demo, tests = _readme_commands()
    assert demo.endswith("merkle demo")
    assert "pytest tests" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    _, tests = _readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines
