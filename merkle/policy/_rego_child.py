"""The child process of merkle.policy.rego, run as a script, isolated
(`python -I`), in an empty folder with an empty environment: one module,
one query, one JSON reply on stdout.  It imports nothing of merkle.
Output the interpreter writes (Rego's `print` is refused before this runs,
but regopy also logs) goes to /dev/null: the reply has its own descriptor."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any


def _position(text: str, offset: int) -> tuple[int, int]:
    data = text.encode("utf-8")[:offset]
    line = data.count(b"\n") + 1
    column = len(data) - (data.rfind(b"\n") + 1) + 1
    return line, column


def _error_line(message: str, text: str) -> str:
    """regopy's S-expression error as `line L, column C: message`."""
    where = re.search(r"\(error \d+:.*?\|(\d+)\|\d+", message)
    what = re.search(r"\(errormsg \d+:([^)]*)\)", message)
    text_of = what.group(1).strip() if what else message.strip().splitlines()[0][:200]
    if where is None:
        return text_of
    line, column = _position(text, int(where.group(1)))
    return f"line {line}, column {column}: {text_of}"


def _plain(value: Any) -> bool:
    """No string in `value` holds a quote, a backslash or a control
    character (regopy's item-by-item conversion misreads those)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if '"' in v or "\\" in v or any(ord(c) < 32 for c in v):
                return False
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def main() -> int:
    reply_fd = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    reply: dict[str, Any]
    try:
        from regopy import Interpreter, LogLevel, RegoError

        rego = Interpreter()
        rego.log_level = LogLevel.NONE
        try:
            rego.add_module(request["name"], request["text"])
        except RegoError as e:
            reply = {"error": _error_line(str(e), request["text"])}
        else:
            if _plain(request["input"]):  # linear in the input's size; the term parser is not
                rego.set_input(request["input"])
            else:  # strings regopy's converter would misread: parsed as a term, exactly
                rego.set_input_term(json.dumps(request["input"], ensure_ascii=False))
            try:
                out = rego.query(request["query"])
            except (RegoError, json.JSONDecodeError) as e:
                reply = {"error": f"evaluation failed: {_error_line(str(e), request['text'])}"}
            else:
                if not out.ok():
                    reply = {"error": "evaluation failed (a conflict or a built-in error in the module)"}
                elif str(out) == "undefined":
                    reply = {"deny": []}
                else:
                    reply = {"deny": out[0].expressions[0]}
    except Exception as e:  # noqa: BLE001 - the parent shows one line for whatever went wrong here
        reply = {"error": f"the Rego interpreter failed: {type(e).__name__}: {e}"}
    os.write(reply_fd, json.dumps(reply).encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
