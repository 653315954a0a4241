"""`merkle run BUNDLE --key PUB PATH -- CMD ARGS...` (docs/deploy.md): the
tree verified exactly as `merkle verify PATH BUNDLE` verifies it (the same
code, the same trust options), then CMD started in merkle's place, with
merkle's environment and open descriptors; when anything fails, CMD never
starts and the exit code is verify's (1 integrity or signature, 2 usage or
unreadable)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from merkle.errors import UsageError


def run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:  # argparse keeps it in some versions, drops it in others
        command = command[1:]
    if not command or command[0].startswith("-"):
        raise UsageError("give the command after --, and options before PATH: merkle run BUNDLE --key PUB PATH -- CMD")
    program = shutil.which(command[0])
    if program is None:
        raise UsageError(f"command not found: {command[0]}")
    from merkle.cli.commands import verify

    args.sources = [args.bundle]
    code = verify(args)
    if code != 0:
        print(f"merkle: {command[0]} not started: {args.path} did not verify", file=sys.stderr)
        return code
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(program, command)
    except OSError as e:
        raise UsageError(f"cannot start {command[0]}: {e.strerror or e}") from e
    return 0  # not reached: execv replaced this process
