"""`merkle verify --policy FILE` and `merkle policy check`: a policy on the
evidence of a tree that verified (docs/policy.md)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from merkle.display import shown
from merkle.errors import MerkleError
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
    if getattr(args, "sign", None):  # policy check --sign: a wrong PIN is said before the tree is hashed
        from merkle.cli.signing import signing_key

        signing_key(args)
    return policy


def needs_kinds(policy: Policy | None) -> bool:
    """Whether evaluating `policy` reads what each file is (P5)."""
    return policy is not None and (policy.files is not None or bool(policy.rego))


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
    evidence = gather(args.path, verified, kinds=needs_kinds(policy), heads=report.heads)
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
    if getattr(args, "sign", None):
        lines.append(_sign(args, policy, results, verified))
    doc = {
        "name": policy.name,
        "evaluated": True,
        "passed": not violations,
        "results": [{"rule": r.rule, "passed": r.ok, "violations": list(r.violations)} for r in results],
    }
    return (1 if violations else 0), {"policy": doc}, lines


def _sign(args: argparse.Namespace, policy: Policy, results: list[Any], verified: Verified) -> str:
    """The result as a signed in-toto statement (predicate: the SARIF log),
    written to -o and kept in the store (docs/policy.md P11)."""
    from merkle import __version__
    from merkle.cli.signing import signing_key
    from merkle.cli.trust import store_for
    from merkle.errors import UsageError
    from merkle.policy.sarif import to_sarif
    from merkle.signing import statements
    from merkle.signing.writing import write_signed

    if not args.output:
        raise UsageError("--sign writes a signed result: add -o RESULT")
    key = signing_key(args)
    summary = verified.summary
    digest_key = statements.digest_key(summary.algorithm) if summary is not None else "sha256"
    log = to_sarif(policy, results, verified.name, verified.root_hex, __version__)
    stmt = statements.result_statement(verified.name, digest_key, verified.root_hex, log)
    write_signed(args.output, statements.sign_statement(stmt, key), key, None, store_for(args))
    return f"policy result signed -> {shown(args.output)}"


def _show_problems(args: argparse.Namespace, log: dict[str, Any], root: str) -> list[str]:
    """Why a verified result does not answer the question asked of it."""
    import datetime

    from merkle.errors import FormatError, UsageError
    from merkle.format.timestamps import parse_duration, parse_time

    (run,) = log["runs"]
    props: dict[str, Any] = run["properties"] if isinstance(run.get("properties"), dict) else {}
    signed_policy: dict[str, Any] = props["policy"] if isinstance(props.get("policy"), dict) else {}
    out = []
    if not run["results"]:
        out.append("the result holds no rule's result")
    if args.policy:
        wanted = load_policy(args.policy)
        if signed_policy.get("sha256") != wanted.digest:
            out.append(f"the result is of another policy than {shown(args.policy)} (or of another version of it)")
    if args.root and args.root.lower() != root:
        out.append(f"the result is about root {root[:16]}..., not {shown(args.root[:16])}...")
    if args.max_age:
        try:
            limit = parse_duration(args.max_age)
        except FormatError as e:
            raise UsageError(f"--max-age: {e.message}") from e
        invocations = run.get("invocations") or [{}]
        try:
            ended = parse_time(invocations[0].get("endTimeUtc"), "endTimeUtc")
        except MerkleError:
            out.append("the result does not say when it was made")
        else:
            age = (datetime.datetime.now(datetime.timezone.utc) - ended).total_seconds()
            if age > limit:
                out.append(f"the result was made {age / 86400:.1f} days ago, more than --max-age {args.max_age}")
    return out


def show(args: argparse.Namespace) -> int:
    """`merkle policy show RESULT --key PUB`: verify a signed policy result
    through the one trust path and print its verdict."""
    import json
    import sys

    from merkle.cli.trust import describe, store_for, trust_policy
    from merkle.signing.envelope import BundleFile
    from merkle.verifying.signed import open_signed

    verified = open_signed([BundleFile.read(args.result)], trust_policy(args), store_for(args), results=True)
    result = verified.result
    if result is None:
        from merkle.errors import UsageError

        raise UsageError("not a signed policy result (merkle policy check --sign writes them)", args.result)
    (run,) = result.log["runs"]
    problems = _show_problems(args, result.log, result.digest)
    for problem in problems:
        print(f"merkle: {args.result}: {problem}", file=sys.stderr)
    if problems:
        return 1
    if args.json:
        json.dump(result.log, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 1 if any(r.get("kind") != "pass" for r in run["results"]) else 0
    print(f"merkle: {describe(verified)}", file=sys.stderr)
    failed = 0
    for r in run["results"]:
        verdict = "pass" if r.get("kind") == "pass" else "FAIL"
        failed += verdict == "FAIL"
        print(f"{verdict}  {shown(str(r.get('ruleId')))}  {shown(str(r.get('message', {}).get('text', '')))}")
    props: dict[str, Any] = run["properties"] if isinstance(run.get("properties"), dict) else {}
    named: dict[str, Any] = props["policy"] if isinstance(props.get("policy"), dict) else {}
    when = (run.get("invocations") or [{}])[0].get("endTimeUtc", "an unknown time")
    print(
        f"merkle: policy {shown(str(named.get('name', '?')))} (sha256 {shown(str(named.get('sha256', '?'))[:16])}...)"
        f" on {shown(verified.name)} (root {result.digest[:16]}...) at {shown(str(when))}: "
        f"{len(run['results']) - failed} of {len(run['results'])} rules pass",
        file=sys.stderr,
    )
    return 1 if failed else 0
