"""A policy file, parsed strictly (docs/policy.md, rules P1-P4).

A policy is YAML (PyYAML, the `[policy]` extra) or JSON (no extra), and a
`.rego` file is a policy of one Rego module.  Every mistake is one error
naming the file and the line: a key this schema does not know, a value of
the wrong type, a key given twice, YAML aliases (a document that expands
without bound), a policy of no rule.  Paths in a policy (keys, CAs, Rego
modules) are relative to the policy file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from merkle.errors import FormatError, UsageError, install_hint
from merkle.format import strictjson
from merkle.format.timestamps import parse_duration
from merkle.policy.kinds import KINDS
from merkle.policy.rego import check_module
from merkle.source.local import read_capped

SCHEMA_VERSION: Final = 1
MAX_POLICY_BYTES: Final = 1 << 20
_LICENSE: Final = re.compile(r"(other:)?[a-z0-9][a-z0-9.+_-]{0,127}")
_REPO_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_COMMIT: Final = re.compile(r"[0-9a-f]{40}")


class Lines(dict[str, Any]):
    """A mapping read from a policy, with the line of each key (1-based; 0
    where the format keeps none) and of the mapping itself."""

    def __init__(self, items: Mapping[str, Any], lines: Mapping[str, int], line: int) -> None:
        super().__init__(items)
        self.lines = dict(lines)
        self.line = line


@dataclass(frozen=True)
class Signers:
    keys: tuple[str, ...] = ()
    cas: tuple[str, ...] = ()
    identities: tuple[str, ...] = ()
    issuers: tuple[str, ...] = ()
    threshold: int = 1


@dataclass(frozen=True)
class Files:
    forbid: tuple[str, ...] = ()
    """Kinds no file may have (merkle.policy.kinds.KINDS)."""
    allow: tuple[str, ...] = ()
    """Paths (globs, as --exclude's) exempt from `forbid`."""
    require: tuple[str, ...] = ()
    """Paths that must be listed and verified."""


@dataclass(frozen=True)
class Origin:
    repo_id: str | None = None
    repo_type: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class Policy:
    """A parsed policy: each rule None when the policy does not state it."""

    source: str
    name: str
    signers: Signers | None = None
    licenses: tuple[str, ...] | None = None
    max_age: float | None = None
    """Seconds: the statement must have been signed within this long."""
    require_expiry: bool = False
    files: Files | None = None
    model_card: tuple[str, ...] | None = None
    origin: Origin | None = None
    algorithms: tuple[str, ...] | None = None
    chunk_sizes: tuple[int, ...] | None = None
    rego: tuple[tuple[str, str], ...] = ()
    """(file, text) of each Rego module."""
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    """Where each rule is stated (for results that point at the policy)."""
    digest: str = ""
    """SHA-256 over what the policy is: its file, its Rego modules and the
    signer files it names, so a signed result names exactly the policy."""

    @property
    def rules(self) -> tuple[str, ...]:
        """The built-in rules this policy states, in the order they run."""
        named = (
            ("signers", self.signers),
            ("licenses", self.licenses),
            ("age", self.max_age if self.max_age is not None or self.require_expiry else None),
            ("files", self.files),
            ("model_card", self.model_card),
            ("origin", self.origin),
            ("hashing", self.algorithms if self.algorithms is not None or self.chunk_sizes is not None else None),
        )
        return tuple(n for n, v in named if v is not None)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and check a policy file (UsageError naming it and the line)."""
    import dataclasses
    import hashlib

    name = os.fspath(path)
    data = read_capped(name, MAX_POLICY_BYTES)
    if name.endswith(".rego"):
        text = _text(data, name)
        check_module(name, text)
        policy = Policy(name, os.path.basename(name), rego=((name, text),))
    else:
        policy = _policy(_parse(data, name), name)
    h = hashlib.sha256(b"merkle policy v1\0" + data)
    for _, text in policy.rego:
        h.update(b"\0rego\0" + text.encode("utf-8"))
    if policy.signers is not None:
        for p in (*policy.signers.keys, *policy.signers.cas):
            h.update(b"\0signer\0" + read_capped(p, MAX_POLICY_BYTES))
    return dataclasses.replace(policy, digest=h.hexdigest())


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"not UTF-8 (byte {e.start})", name) from e


def _parse(data: bytes, name: str) -> Lines:
    if name.endswith(".json"):
        try:
            doc = strictjson.loads(data, name, MAX_POLICY_BYTES)
        except FormatError as e:
            raise UsageError(e.message, name) from e
        if not isinstance(doc, dict):
            raise UsageError("a policy is a mapping of rules", name)
        top: Lines = _json_lines(doc)
        return top
    return _yaml(_text(data, name), name)


def _json_lines(doc: Any) -> Any:
    if isinstance(doc, dict):
        return Lines({k: _json_lines(v) for k, v in doc.items()}, {}, 0)
    if isinstance(doc, list):
        return [_json_lines(v) for v in doc]
    return doc


def _yaml(text: str, name: str) -> Lines:
    try:
        import yaml
    except ImportError as e:
        raise UsageError(f"a YAML policy needs PyYAML: {install_hint('policy')} (or write it as JSON)", name) from e

    class Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML has no types here
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.MarkedYAMLError(None, None, "aliases are not allowed in a policy", event.start_mark)
            return super().compose_node(parent, index)

    def mapping(loader: Loader, node: yaml.MappingNode) -> Lines:
        items: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise UsageError(f"line {line}: keys are strings, not {type(key).__name__}", name)
            if key in items:
                raise UsageError(f"line {line}: {key!r} is given twice (first on line {lines[key]})", name)
            items[key] = loader.construct_object(value_node, deep=True)
            lines[key] = line
        return Lines(items, lines, node.start_mark.line + 1)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        doc = yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader, without aliases
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise UsageError(f"{where}{e.problem or e.context or 'not YAML'}", name) from e
    except yaml.YAMLError as e:
        raise UsageError(f"not YAML: {e}", name) from e
    except RecursionError as e:
        raise UsageError("nested too deeply", name) from e
    if not isinstance(doc, Lines):
        raise UsageError("a policy is a mapping of rules", name)
    lines: Lines = doc
    return lines


# -- the schema ------------------------------------------------------------------------------------


class _Reader:
    """Reads one policy mapping: every key must be read, every value checked."""

    def __init__(self, doc: Lines, name: str, where: str = "") -> None:
        self.doc, self.name, self.where, self.read = doc, name, where, set[str]()

    def line(self, key: str | None = None) -> str:
        n = self.doc.lines.get(key, 0) if key is not None else self.doc.line
        return f"line {n}: " if n else ""

    def fail(self, key: str | None, message: str) -> UsageError:
        return UsageError(f"{self.line(key)}{self.where}{message}", self.name)

    def get(self, key: str, check: Callable[[Any], bool], want: str) -> Any:
        self.read.add(key)
        if key not in self.doc:
            return None
        value = self.doc[key]
        if not check(value):
            raise self.fail(key, f"{key} must be {want}")
        return value

    def strings(
        self, key: str, pattern: re.Pattern[str] | None = None, what: str = "strings"
    ) -> tuple[str, ...] | None:
        value = self.get(key, _string_list, f"a list of {what}")
        if value is None:
            return None
        bad = [v for v in value if pattern is not None and not pattern.fullmatch(v.lower())]
        if bad:
            raise self.fail(key, f"{key}: {bad[0]!r} is not one of the {what}")
        return tuple(value)

    def section(self, key: str) -> _Reader | None:
        value = self.get(key, lambda v: isinstance(v, Lines), "a mapping")
        return None if value is None else _Reader(value, self.name, f"{self.where}{key}.")

    def done(self) -> None:
        unknown = [k for k in self.doc if k not in self.read]
        if unknown:
            known = ", ".join(sorted(self.read))
            key = unknown[0] if len(unknown[0]) <= 60 else unknown[0][:60] + "..."
            raise self.fail(unknown[0], f"unknown key {key!r} (known here: {known})")


def _string_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) and x for x in v)


def _policy(doc: Lines, name: str) -> Policy:
    top = _Reader(doc, name)
    version = top.get("version", lambda v: type(v) is int, "an integer")
    if version is None:
        raise top.fail(None, f"a policy states its schema version: version: {SCHEMA_VERSION}")
    if version != SCHEMA_VERSION:
        raise top.fail(
            "version", f"policy schema version {version} is not supported (this merkle reads {SCHEMA_VERSION})"
        )
    title = top.get("name", lambda v: isinstance(v, str) and 0 < len(v) <= 200, "a short string") or os.path.basename(
        name
    )
    here = os.path.dirname(os.path.abspath(name))
    rules = top.section("rules")
    if rules is None:
        raise top.fail(None, "a policy has rules: a mapping of built-in rules (and rego)")
    out: dict[str, Any] = {}
    signers = rules.section("signers")
    if signers is not None:
        out["signers"] = _signers(signers, here)
    licenses = rules.section("licenses")
    if licenses is not None:
        allowed = licenses.strings("allow", _LICENSE, "license ids")
        if not allowed:
            raise licenses.fail("allow", "allow: at least one license id (such as mit, apache-2.0, other:NAME)")
        out["licenses"] = tuple(a.lower() for a in allowed)
        licenses.done()
    age = rules.section("age")
    if age is not None:
        within = age.get("signed_within", lambda v: isinstance(v, str), "a duration such as 90d")
        if within is not None:
            try:
                out["max_age"] = parse_duration(within)
            except FormatError as e:
                raise age.fail("signed_within", e.message) from e
        out["require_expiry"] = bool(age.get("expires", lambda v: isinstance(v, bool), "true or false"))
        if within is None and not out["require_expiry"]:
            raise age.fail(None, "age: state signed_within, expires: true, or both")
        age.done()
    files = rules.section("files")
    if files is not None:
        forbid = files.strings("forbid", None, "kinds") or ()
        unknown = [k for k in forbid if k not in KINDS]
        if unknown:
            raise files.fail("forbid", f"forbid: unknown kind {unknown[0]!r} (kinds: {', '.join(KINDS)})")
        out["files"] = Files(forbid, files.strings("allow") or (), files.strings("require") or ())
        if not (forbid or out["files"].require):
            raise files.fail(None, "files: state forbid, require, or both")
        files.done()
    card = rules.section("model_card")
    if card is not None:
        required = card.strings("require", None, "front-matter fields")
        if not required:
            raise card.fail("require", "require: at least one front-matter field")
        out["model_card"] = required
        card.done()
    origin = rules.section("origin")
    if origin is not None:
        out["origin"] = Origin(
            origin.get("repo_id", lambda v: isinstance(v, str) and bool(_REPO_ID.fullmatch(v)), "ORG/NAME"),
            origin.get("repo_type", lambda v: v in ("model", "dataset", "space"), "model, dataset or space"),
            origin.get("revision", lambda v: isinstance(v, str) and bool(_COMMIT.fullmatch(v)), "a 40-digit commit"),
        )
        if out["origin"] == Origin():
            raise origin.fail(None, "origin: state repo_id, repo_type, revision, or several")
        origin.done()
    hashing = rules.section("hashing")
    if hashing is not None:
        out["algorithms"] = hashing.strings("algorithms", re.compile("blake3|sha256"), "algorithms (blake3, sha256)")
        sizes = hashing.get(
            "chunk_sizes", lambda v: isinstance(v, list) and all(type(x) is int and x > 0 for x in v), "a list of sizes"
        )
        out["chunk_sizes"] = tuple(sizes) if sizes is not None else None
        if out["algorithms"] is None and out["chunk_sizes"] is None:
            raise hashing.fail(None, "hashing: state algorithms, chunk_sizes, or both")
        hashing.done()
    rego_files = rules.strings("rego", None, "Rego files")
    rules.done()
    top.done()
    rego = tuple(
        (p, _text(read_capped(p, MAX_POLICY_BYTES), p)) for p in [_relative(here, f) for f in rego_files or ()]
    )
    for p, text in rego:
        check_module(p, text)
    policy = Policy(name, title, rego=rego, lines=dict(rules.doc.lines), **out)
    if not policy.rules and not policy.rego:
        raise top.fail("rules", "the policy states no rule")
    return policy


def _relative(here: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(here, path)


def _signers(s: _Reader, here: str) -> Signers:
    keys = tuple(_relative(here, p) for p in s.strings("keys", None, "public key files") or ())
    cas = tuple(_relative(here, p) for p in s.strings("cas", None, "CA certificate files") or ())
    identities = s.strings("identities", None, "certificate identities") or ()
    issuers = s.strings("issuers", None, "certificate issuers") or ()
    threshold = s.get("threshold", lambda v: type(v) is int and v >= 1, "a positive integer") or 1
    if not keys and not cas:
        raise s.fail(None, "signers: name keys or cas")
    if (identities or issuers) and not cas:
        raise s.fail("identities" if identities else "issuers", "certificate identities and issuers need cas")
    if threshold > len(keys) + (threshold if cas else 0):
        raise s.fail("threshold", f"threshold {threshold} is more than the {len(keys)} keys named")
    s.done()
    return Signers(keys, cas, identities, issuers, threshold)
