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


def _set_input(rego: Any, value: Any) -> None:
    """`value` as the input document, built item by item through regopy's
    C interface.  rego-cpp keeps a string as its JSON source, escapes and
    all, so each string goes in JSON-escaped exactly as the term parser
    would read it from `json.dumps(value, ensure_ascii=False)`, which is
    the same document at a small part of the term parser's cost (and a
    sixth of regopy's own item-by-item conversion, which also misreads a
    quote or a backslash)."""
    from regopy import rego_shared

    lib = rego_shared.rego
    string, integer, number = lib.regoInputString, lib.regoInputInt, lib.regoInputFloat
    boolean, null, item = lib.regoInputBoolean, lib.regoInputNull, lib.regoInputObjectItem
    obj, array = lib.regoInputObject, lib.regoInputArray
    escaped = json.encoder.encode_basestring  # quotes, backslashes and control characters; UTF-8 kept
    keys: dict[str, bytes] = {}
    handle = rego_shared.rego_new_input()
    failed = 0  # the calls' codes or-ed: 0 while every call succeeded

    def add(v: Any) -> None:
        nonlocal failed
        kind = type(v)
        if kind is str:
            failed |= string(handle, escaped(v)[1:-1].encode("utf-8"))
        elif kind is dict:
            for k, x in v.items():
                key = keys.get(k)
                if key is None:
                    key = keys[k] = escaped(str(k))[1:-1].encode("utf-8")
                failed |= string(handle, key)
                add(x)
                failed |= item(handle)
            failed |= obj(handle, len(v))
        elif kind is int:
            if not -(1 << 63) <= v < 1 << 63:
                raise ValueError(f"the input document holds an integer out of range: {v}")
            failed |= integer(handle, v)
        elif kind is list:
            for x in v:
                add(x)
            failed |= array(handle, len(v))
        elif kind is bool:
            failed |= boolean(handle, v)
        elif kind is float:
            failed |= number(handle, v)
        elif v is None:
            failed |= null(handle)
        else:
            raise ValueError(f"the input document holds a {kind.__name__}")

    try:
        add(value)
        if failed:
            raise ValueError("the Rego interpreter could not build the input document")
        rego_shared.rego_set_input(rego._impl, handle)
    finally:
        rego_shared.rego_free_input(handle)


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
            _set_input(rego, request["input"])
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
