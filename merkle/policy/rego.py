"""Custom rules in Rego (docs/policy.md, P7-P9), evaluated with regopy (the
`[policy]` extra) in a child process.

A policy module is `package merkle` with a `deny` set of strings (Rego v1:
`deny contains msg if {...}`); its input is the evidence document
(merkle.policy.evidence.Evidence.to_input).  Each module is evaluated in a
child process with a minimal environment and a time limit: regopy can end
the process that runs it (a C++ exception it does not translate), and a
policy must not read the machine, so built-ins that do (`opa.runtime`, the
clock, randomness, `print`) are refused before anything runs.  regopy has
no network built-ins.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, Final

from merkle.errors import UsageError, install_hint

TIMEOUT: Final = 60.0
QUERY: Final = "data.merkle.deny"
FORBIDDEN: Final = {
    "opa.runtime": "it reads the process environment",
    "time.now_ns": "it reads the clock (use input.evaluated_at)",
    "rand.intn": "it is random",
    "uuid.rfc4122": "it is random",
    "print": "it writes to the output",
    "http.send": "it reaches the network",
}
_TOKEN: Final = re.compile(r"\b(opa\.runtime|time\.now_ns|rand\.intn|uuid\.rfc4122|http\.send|print)\s*\(")
_PACKAGE: Final = re.compile(r"^\s*package\s+merkle\s*$", re.MULTILINE)


def check_module(name: str, text: str) -> None:
    """UsageError naming the file and line for what is refused before running."""
    code = _without_comments(text)
    if not _PACKAGE.search(code):
        raise UsageError("a merkle policy module is `package merkle`", name)
    m = _TOKEN.search(code)
    if m is not None:
        line = code.count("\n", 0, m.start()) + 1
        raise UsageError(
            f"line {line}: built-in {m.group(1)} is not allowed in a policy: {FORBIDDEN[m.group(1)]}", name
        )
    if not re.search(r"\bdeny\b", code):
        raise UsageError("the module defines no deny rule (deny contains msg if {...})", name)


def _without_comments(text: str) -> str:
    """`text` with each `#` comment cut and each string's contents blanked
    (a raw string in backticks may span lines), newlines kept: what is left
    is code, line for line."""
    out = []
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote is not None:
            if c == "\\" and quote == '"':  # an escape: it and what it escapes are string
                out.append("  " if i + 1 < len(text) and text[i + 1] != "\n" else " ")
                i += 2
                continue
            if c == quote:
                quote = None
                out.append(c)
            elif c == "\n":
                out.append(c)
                if quote == '"':  # a plain string does not span lines: Rego's parser refuses it
                    quote = None
            else:
                out.append(" ")
        elif c in '"`':
            quote = c
            out.append(c)
        elif c == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def evaluate(modules: Sequence[tuple[str, str]], document: dict[str, Any], timeout: float = TIMEOUT) -> list[list[str]]:
    """Each module's violations (`deny`), in order.  UsageError (exit 2) for
    a module with an error, naming its file and line."""
    for name, text in modules:
        check_module(name, text)
    try:
        import regopy  # noqa: F401 - only to say how to install it
    except ImportError as e:
        raise UsageError(f"Rego policies need regopy: {install_hint('policy')}", modules[0][0]) from e
    out = []
    for name, text in modules:
        out.append(_run(name, text, document, timeout))
    return out


def fields_read(text: str) -> set[str] | None:
    """The input document's members a module names as `input.FIELD`; None
    when it uses `input` otherwise (then it gets all of them)."""
    code = _without_comments(text)
    if len(re.findall(r"\binput\b", code)) != len(re.findall(r"\binput\.[A-Za-z_]", code)):
        return None
    return set(re.findall(r"\binput\.([A-Za-z_][A-Za-z0-9_]*)", code))


def referenced(text: str, document: dict[str, Any]) -> dict[str, Any]:
    """The part of the input document a module can read (building a large
    input costs the interpreter more than evaluating it)."""
    names = fields_read(text)
    return document if names is None else {k: v for k, v in document.items() if k in names}


CHILD: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_rego_child.py")
MEMORY_LIMIT: Final = 4 << 30
"""Resident memory the child may use: watched from here (regopy's allocator
reserves address space at start, so an address-space limit stops it cold)."""


def _limits(timeout: float) -> None:  # in the child, before it runs anything of the policy's
    import resource

    cpu = int(timeout) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def _resident(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _run(name: str, text: str, document: dict[str, Any], timeout: float) -> list[str]:
    import tempfile
    import threading
    import time

    document = referenced(text, document)
    request = json.dumps({"name": name, "text": text, "input": document, "query": QUERY}, ensure_ascii=False)
    # The child script by its absolute path, isolated (-I: no current directory, no PYTHONPATH, no user
    # site) and run in an empty folder with an empty environment: nothing of the tree being checked, or of
    # the folder merkle runs in, can stand in for it or be read by it.
    with tempfile.TemporaryDirectory(prefix="merkle-rego-") as empty:
        child = subprocess.Popen(
            [sys.executable, "-I", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"LANG": "C.UTF-8"},
            cwd=empty,
            preexec_fn=lambda: _limits(timeout),  # noqa: PLW1509 - no threads are started in between
        )
        got: list[tuple[bytes, bytes]] = []
        talk = threading.Thread(target=lambda: got.append(child.communicate(request.encode("utf-8"))), daemon=True)
        talk.start()
        deadline = time.monotonic() + timeout
        why = None
        while talk.is_alive():
            talk.join(0.05)
            if time.monotonic() > deadline:
                why = f"evaluating the policy took longer than {timeout:g} s"
            elif _resident(child.pid) > MEMORY_LIMIT:
                why = f"evaluating the policy used more than {MEMORY_LIMIT >> 30} GiB of memory"
            if why is not None:
                child.kill()
                talk.join()
                raise UsageError(why, name)
    stdout, stderr = got[0]
    done = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    if done.returncode < 0:
        what = "ran out of time" if -done.returncode == 24 else f"crashed (signal {-done.returncode})"  # SIGXCPU
        raise UsageError(f"the Rego interpreter {what} evaluating this module", name)
    try:
        reply = json.loads(done.stdout.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no reply"]
        raise UsageError(f"the Rego interpreter failed: {tail[0]}", name) from e
    if "error" in reply:
        raise UsageError(str(reply["error"]), name)
    deny = reply.get("deny")
    if not isinstance(deny, list) or not all(isinstance(d, str) for d in deny):
        raise UsageError("deny must be a set of strings", name)
    return sorted(deny)
