"""The built-in rules (docs/policy.md, R1-R7): each returns every violation
it finds, never only the first."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from merkle.errors import MerkleError
from merkle.policy.document import Policy
from merkle.policy.evidence import Evidence
from merkle.signing.envelope import Bundle

RULES: tuple[tuple[str, str], ...] = (
    ("signers", "signed by the policy's keys or certificate identities, as many as its threshold"),
    ("licenses", "every license the verified model card declares is allowed"),
    ("age", "signed within the stated time; an expiry stated"),
    ("files", "no file of a forbidden kind (decided from its bytes); every required file signed"),
    ("model_card", "the verified model card has the required front-matter fields"),
    ("origin", "the signed origin is the pinned Hugging Face repository, type and revision"),
    ("hashing", "the tree is hashed with an allowed algorithm and chunk size"),
)
"""Each built-in rule's id and what it checks, in the order they run."""


@dataclass(frozen=True)
class Result:
    rule: str
    """A built-in rule's id, or `rego:FILE` for a Rego module."""
    violations: tuple[str, ...]
    line: int = 0
    """Where the policy states the rule (0: not known)."""

    @property
    def ok(self) -> bool:
        return not self.violations


def evaluate(
    policy: Policy,
    evidence: Evidence,
    bundles: Sequence[tuple[Bundle, str]],
    now: datetime.datetime | None = None,
) -> list[Result]:
    """Every built-in rule the policy states, on evidence that verified."""
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    checks: dict[str, Callable[[], list[str]]] = {
        "signers": lambda: _signers(policy, bundles, moment),
        "licenses": lambda: _licenses(policy, evidence),
        "age": lambda: _age(policy, evidence, moment),
        "files": lambda: _files(policy, evidence),
        "model_card": lambda: _model_card(policy, evidence),
        "origin": lambda: _origin(policy, evidence),
        "hashing": lambda: _hashing(policy, evidence),
    }
    return [Result(rule, tuple(checks[rule]()), policy.lines.get(rule, 0)) for rule in policy.rules]


def evaluate_rego(policy: Policy, evidence: Evidence, now: datetime.datetime | None = None) -> list[Result]:
    """Each Rego module of the policy on the evidence document: one result per module."""
    if not policy.rego:
        return []
    import os

    from merkle.format.timestamps import format_time
    from merkle.policy import rego

    wanted: set[str] | None = set()
    for _, text in policy.rego:
        names = rego.fields_read(text)
        wanted = None if names is None or wanted is None else wanted | names
    document = evidence.to_input(wanted)
    document["evaluated_at"] = format_time(now or datetime.datetime.now(datetime.timezone.utc))
    denies = rego.evaluate(policy.rego, document)
    return [
        Result(f"rego:{os.path.basename(name)}", tuple(d)) for (name, _), d in zip(policy.rego, denies, strict=True)
    ]


def _signers(policy: Policy, bundles: Sequence[tuple[Bundle, str]], now: datetime.datetime) -> list[str]:
    """The policy's signers decide again, with the one trust decision
    (merkle.signing.trust.decide), over the same bundles."""
    from merkle.signing.trust import decide
    from merkle.verifying.signed import policy_from_files

    s = policy.signers
    assert s is not None
    try:
        trust = policy_from_files(
            keys=s.keys, cas=s.cas, identities=s.identities, issuers=s.issuers, threshold=s.threshold
        )
        decide(bundles, trust, None, now)
    except MerkleError as e:
        return [f"signers: {e.message}"]
    return []


def _licenses(policy: Policy, evidence: Evidence) -> list[str]:
    assert policy.licenses is not None
    if evidence.licenses is None:
        return [f"license: {evidence.license_problem}"]
    allowed = policy.licenses
    shown = ", ".join(allowed)
    return [f"license {lic!r} is not allowed (allowed: {shown})" for lic in evidence.licenses if lic not in allowed]


def _age(policy: Policy, evidence: Evidence, now: datetime.datetime) -> list[str]:
    out = []
    v = evidence.verified
    if policy.max_age is not None:
        signed = v.signed
        if signed is None:
            out.append("the statement records no signing time: its age cannot be established")
        elif (now - signed).total_seconds() > policy.max_age:
            days = policy.max_age / 86400
            out.append(f"signed at {signed:%Y-%m-%dT%H:%M:%SZ}, more than {days:g} days ago")
        elif (signed - now).total_seconds() > 300:
            out.append(f"signed at {signed:%Y-%m-%dT%H:%M:%SZ}, in the future")
    if policy.require_expiry and v.expires is None:
        out.append("the statement states no expiry")
    return out


def _files(policy: Policy, evidence: Evidence) -> list[str]:
    f = policy.files
    assert f is not None
    allowed = [_path_glob(p) for p in f.allow]
    out = []
    for fact in evidence.files:
        if f.allow and any(a.fullmatch(fact.path) for a in allowed):
            continue
        if fact.kind == "unreadable" and f.forbid:
            out.append(f"{fact.path}: its kind cannot be established ({fact.problem})")
        elif fact.kind == "archive" and "pickle" in f.forbid and "archive" not in f.forbid:
            out.append(f"{fact.path}: an archive whose contents are not examined, so it may hold a pickle")
        elif fact.kind in f.forbid:
            out.append(f"{fact.path}: a {fact.kind} file, which the policy forbids")
    listed = {fact.path for fact in evidence.files}
    out += [f"{name}: required, and not signed" for name in f.require if name not in listed]
    return out


def _path_glob(pattern: str) -> re.Pattern[str]:
    """An `allow` pattern matched against a whole path: `*` and `?` stay in
    one name, `**` crosses folders (a pattern never covers what lies below
    a folder it names)."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _model_card(policy: Policy, evidence: Evidence) -> list[str]:
    assert policy.model_card is not None
    card = evidence.model_card
    if card is None:
        return [f"model card: {evidence.card_problem}"]
    return [
        f"model card: front matter has no {field!r}"
        for field in policy.model_card
        if card.get(field) in (None, "", [], {})
    ]


def _origin(policy: Policy, evidence: Evidence) -> list[str]:
    pinned = policy.origin
    assert pinned is not None
    manifest = evidence.verified.manifest
    origin = manifest.origin if manifest is not None else None
    from merkle.format.origin import GitOrigin

    if origin is None or isinstance(origin, GitOrigin):
        return ["origin: the statement records no Hugging Face origin"]
    out = []
    if pinned.repo_id is not None and origin.repo != pinned.repo_id:
        out.append(f"origin: repository {origin.repo!r}, pinned {pinned.repo_id!r}")
    if pinned.repo_type is not None and origin.repo_type != pinned.repo_type:
        out.append(f"origin: repository type {origin.repo_type!r}, pinned {pinned.repo_type!r}")
    if pinned.revision is not None and origin.revision != pinned.revision:
        out.append(f"origin: revision {origin.revision}, pinned {pinned.revision}")
    return out


def _hashing(policy: Policy, evidence: Evidence) -> list[str]:
    summary = evidence.verified.summary
    algorithm = summary.algorithm if summary is not None else "sha256"
    chunk_size = summary.chunk_size if summary is not None else None
    out = []
    if policy.algorithms is not None and algorithm not in policy.algorithms:
        out.append(f"hashing: algorithm {algorithm}, allowed {', '.join(policy.algorithms)}")
    if policy.chunk_sizes is not None and chunk_size not in policy.chunk_sizes:
        shown = "whole files (OpenSSF)" if chunk_size is None else str(chunk_size)
        out.append(f"hashing: chunk size {shown}, allowed {', '.join(map(str, policy.chunk_sizes))}")
    return out
