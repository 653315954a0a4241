"""The parser is built for the subcommand a command line runs (cli/parser.py):
what it prints and accepts must be what the complete parser would."""

import argparse

import pytest

from merkle.cli.parser import ALL, COMMANDS, command_of, make_parser


def _sub(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize(
    "argv, command",
    [
        (["hash", "f"], "hash"),
        (["verify", "--key", "k", "d", "m"], "verify"),
        (["--version"], None),
        (["-h", "hash"], None),  # -h acts first: the list of subcommands is all it needs
        (["--help"], None),
        ([], None),
        (["bogus"], "bogus"),
        (["--he"], ALL),  # an abbreviation, or any other option: the complete parser says what it is
        (["--json", "hash", "f"], ALL),
        (["-", "hash"], ALL),
    ],
)
def test_command_of_reads_argv_as_argparse_does(argv, command):
    assert command_of(argv) == command


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_a_subcommand_built_alone_is_the_one_the_complete_parser_has(name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    alone, complete = _sub(make_parser(name), name), _sub(make_parser(ALL), name)
    assert alone.format_help() == complete.format_help()
    assert len(alone._actions) > 1 or name in ("doctor", "demo")  # (doctor and demo have few)
    for action in ("list", "show") if name == "store" else ("verify",) if name == "hf" else ():
        assert _sub(make_parser(name), name, action).format_help() == _sub(make_parser(ALL), name, action).format_help()


def test_the_list_of_subcommands_is_the_same_without_their_arguments(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert make_parser(None).format_help() == make_parser(ALL).format_help()
    assert make_parser("bogus").format_help() == make_parser(ALL).format_help()
    assert [n for n, _, _ in COMMANDS] == list(_names(make_parser(None)))


def _names(parser: argparse.ArgumentParser) -> list[str]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_help_width_follows_columns_as_argparse_does(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    narrow = _sub(make_parser("build"), "build").format_help()
    assert max(map(len, narrow.splitlines())) <= 60
    assert narrow == _sub(_plain("build"), "build").format_help()
    monkeypatch.setenv("COLUMNS", "not a number")
    assert _sub(make_parser("hash"), "hash").format_help() == _sub(_plain("hash"), "hash").format_help()


def _plain(command: str) -> argparse.ArgumentParser:
    """The same parser laid out by argparse's own HelpFormatter (which asks shutil for the width)."""
    parser = argparse.ArgumentParser(prog="merkle")
    sub = parser.add_subparsers()
    for name, help, add_arguments in COMMANDS:
        if name == command:
            add_arguments(sub.add_parser(name, help=help))
    return parser
