"""The `merkle` command line.  Exit codes: 0 verified, 1 integrity failure,
2 usage error or unreadable input (docs/cli.md).

This module is the program's entry point (`merkle.cli:main`), so it imports
nothing at the top but `sys`: `merkle --version` is answered before any
other module loads, and every other command imports the parser
(cli/parser.py), then only the code of the subcommand it runs.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def _warn(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    from merkle.display import shown

    print(f"merkle: warning: {shown(str(message))}", file=sys.stderr)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through finally: temporary files go


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if words == ["--version"]:  # what argparse's version action prints, before argparse is imported
        from merkle import __version__

        print(f"merkle {__version__}")
        return 0
    import os
    import signal
    import warnings

    from merkle.cli.options import FLAGS
    from merkle.cli.parser import command_of, make_parser
    from merkle.display import shown
    from merkle.errors import MerkleError, spelled

    warnings.showwarning = _warn
    signal.signal(signal.SIGTERM, _terminate)
    parser = make_parser(command_of(words))
    args = parser.parse_args(words)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    from merkle._gc import paused

    try:
        with spelled(FLAGS), paused():  # millions of long-lived objects, no cycles: merkle/_gc.py
            return int(args.run(args))
    except MerkleError as e:
        print(f"merkle: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("merkle: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 2
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"merkle: error: {shown(where + str(e.strerror or e))}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug: one line, not a traceback, unless asked
        if os.environ.get("MERKLE_DEBUG"):
            raise
        print(
            f"merkle: internal error: {type(e).__name__}: {shown(str(e))} (set MERKLE_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 2
