"""`merkle verify --policy FILE` and `merkle policy check`: a policy on the
evidence of a tree that verified (docs/policy.md)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from merkle.display import shown
from merkle.policy.document import Policy, load_policy
from merkle.report import Report

if TYPE_CHECKING:
    from merkle.signing.envelope import BundleFile
    from merkle.signing.statements import Verified


def load(args: argparse.Namespace) -> Policy | None:
    """The policy named by --policy, read before anything else is (a bad
    policy is exit 2 before any byte is hashed)."""
    name = getattr(args, "policy", None)
    if not name:
        return None
    policy = load_policy(name)
    if policy.rego:  # a module that does not compile is exit 2 before anything is hashed
        from merkle.policy import rego

        rego.evaluate(policy.rego, {})
    args.loaded_policy = policy
    return policy


def apply(
    args: argparse.Namespace, policy: Policy, report: Report, verified: Verified | None, bundles: list[BundleFile]
) -> tuple[int, dict[str, Any], list[str]]:
    """Evaluate `policy` when the tree verified: (exit code, JSON part,
    lines for people: one per violation, then the verdict)."""
    from merkle.policy.evidence import gather
    from merkle.policy.rules import evaluate, evaluate_rego

    if not report.ok or verified is None:
        why = "the tree did not verify" if verified is not None else "a policy needs a signed bundle"
        doc = {"name": policy.name, "evaluated": False, "reason": why}
        return (report.exit_code or 1), {"policy": doc}, [f"policy {shown(policy.name)} not evaluated: {why}"]
    evidence = gather(args.path, verified, kinds=policy.files is not None or bool(policy.rego))
    results = evaluate(policy, evidence, [(b.bundle, b.path) for b in bundles]) + evaluate_rego(policy, evidence)
    violations = [(r.rule, v) for r in results for v in r.violations]
    lines = [f"policy {shown(policy.name)}: {rule}: {shown(v)}" for rule, v in violations]
    passed = sum(r.ok for r in results)
    verdict = "passed" if not violations else f"FAILED ({len(violations)} violations)"
    lines.append(f"policy {shown(policy.name)} {verdict}: {passed} of {len(results)} rules pass")
    if getattr(args, "sarif", None):
        import json

        from merkle import __version__
        from merkle.policy.sarif import to_sarif
        from merkle.source.local import write_atomic

        log = to_sarif(policy, results, verified.name, verified.root_hex, __version__)
        write_atomic(args.sarif, (json.dumps(log, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        lines.append(f"policy results (SARIF) -> {shown(args.sarif)}")
    doc = {
        "name": policy.name,
        "evaluated": True,
        "passed": not violations,
        "results": [{"rule": r.rule, "passed": r.ok, "violations": list(r.violations)} for r in results],
    }
    return (1 if violations else 0), {"policy": doc}, lines
