"""`merkle bom`: a CycloneDX ML-BOM of a tree that verified, or that this
run hashed; `merkle bom --check`: a signed BOM checked against a tree
(docs/bom.md)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from merkle.cli.output import emit_json, print_report
from merkle.cli.progress import close, make_progress
from merkle.display import shown
from merkle.errors import IntegrityError, SourceError, UsageError

if TYPE_CHECKING:
    from merkle.bom.facts import Facts
    from merkle.signing.envelope import BundleFile
    from merkle.signing.statements import Verified


def bom(args: argparse.Namespace) -> int:
    if args.check:
        return _check(args)
    if args.sign and args.output in (None, "-"):
        raise UsageError("--sign writes a signed BOM: add -o BUNDLE")
    if args.json and args.output in (None, "-"):
        raise UsageError("--json prints a summary on stdout: write the BOM with -o FILE")
    if args.sign:  # a wrong PIN or a disabled KMS key is said before the tree is hashed
        from merkle.cli.signing import signing_key

        signing_key(args)
    if args.output not in (None, "-"):
        from merkle.cli.commands import _writable

        _writable(args.output)  # before any byte is hashed
    first, *rest = args.inputs
    if os.path.isdir(first):
        facts = _of_tree(args, first, rest)
    else:
        if not os.path.lexists(first):
            raise SourceError("cannot read: no such file or directory", first)
        facts = _of_bundles(args, list(args.inputs))
    from merkle import __version__
    from merkle.bom.writing import to_bytes, to_cyclonedx

    if args.sign and not facts.files:  # as merkle sign refuses an empty manifest
        raise UsageError("no file to sign: the BOM lists none, and an empty model is not signed", first)
    doc = to_cyclonedx(facts, args.spec_version, __version__)
    if args.sign:
        _sign(args, facts, doc)
    elif args.output in (None, "-"):
        sys.stdout.buffer.write(to_bytes(doc))
        sys.stdout.flush()
    else:
        from merkle.source.local import write_atomic

        write_atomic(args.output, to_bytes(doc))
    _summary(args, facts)
    return 0


def _bundles(args: argparse.Namespace, paths: list[str]) -> list[BundleFile]:
    from merkle.format.manifest import Manifest
    from merkle.signing.documents import load_document

    if not (args.key or args.ca):
        raise UsageError("a signed bundle is only as good as the key that checks it: add --key PUB or --ca CERT")
    docs = [load_document(p) for p in paths]
    if any(isinstance(d, Manifest) for d in docs):
        raise UsageError(
            "an unsigned manifest vouches for nothing a BOM could say: give PATH (hashed by this run) or a "
            "signed bundle"
        )
    return docs  # type: ignore[return-value]  # every one a BundleFile


def _of_tree(args: argparse.Namespace, path: str, bundle_paths: list[str]) -> Facts:
    """PATH alone: built here (every hash computed by this run); PATH and
    bundles: the bundles verified, then the tree against them."""
    from merkle.bom import describing
    from merkle.cli.commands import _output_inside, _walk
    from merkle.cli.trust import store_for, trust_policy

    if not bundle_paths and (args.key or args.ca):
        raise UsageError("--key/--ca check a signed bundle: give PATH BUNDLE, or drop them")
    if bundle_paths:
        _no_build_options(args, "checks PATH against the bundle's own parameters")
    bundles = _bundles(args, bundle_paths) if bundle_paths else []
    progress = make_progress("hashing", args.quiet or args.json)
    if not bundles:
        from merkle.building import BuildOptions

        exclude = list(args.exclude)
        if args.output not in (None, "-"):
            exclude += _output_inside(path, args.output)
        options = BuildOptions(
            args.algorithm, args.chunk_size, tuple(exclude), not args.no_default_excludes, args.repo_id, args.repo_type
        )
        try:
            return describing.of_tree(
                path, options, _walk(args), sha256=args.sha256, jobs=args.jobs, progress=progress, name=args.name,
                kind=args.type,
            )  # fmt: skip
        finally:
            close(progress)
    from merkle.verifying.tree import CheckOptions

    try:
        facts, report = describing.of_verified_tree(
            path, bundles, trust_policy(args), store_for(args), check=CheckOptions(exclude=tuple(args.exclude)),
            walk=_walk(args), sha256=args.sha256, jobs=args.jobs, progress=progress, kind=args.type,
        )  # fmt: skip
    finally:
        close(progress)
    if facts is None:
        if args.json:  # as verify --json prints a failure: the report, on stdout, as JSON
            emit_json({**report.to_dict(), "bom": None})
        else:
            for outcome in report.failures:
                print(outcome.line())
            print(f"merkle: {report.summary()}", file=sys.stderr)
        raise IntegrityError("the tree did not verify against the bundle: no BOM written", path)
    return facts


def _no_build_options(args: argparse.Namespace, why: str) -> None:
    given = [
        flag
        for flag, value in (
            ("--algorithm", args.algorithm != "blake3"),
            ("--chunk-size", args.chunk_size is not None),
            ("--repo-id", args.repo_id),
            ("--repo-type", args.repo_type),
            ("--no-default-excludes", args.no_default_excludes),
            ("--name", args.name),
        )
        if value
    ]
    if given:
        raise UsageError(f"{', '.join(given)} apply to PATH hashed by this run; with a bundle, merkle bom {why}")


def _of_bundles(args: argparse.Namespace, paths: list[str]) -> Facts:
    """Bundles alone: what they sign, and nothing read from any tree."""
    from merkle.bom.describing import of_bundles
    from merkle.cli.trust import store_for, trust_policy

    if args.sha256:
        raise UsageError("--sha256 reads every file: give the tree too (merkle bom PATH BUNDLE)")
    _no_build_options(args, "describes what the bundle signs")
    return of_bundles(_bundles(args, paths), trust_policy(args), store_for(args), kind=args.type)


def _sign(args: argparse.Namespace, facts: Facts, doc: dict[str, Any]) -> None:
    """The BOM as a signed in-toto statement (predicate type
    https://cyclonedx.org/bom), written to -o and kept in the store."""
    from merkle.cli.signing import signing_key
    from merkle.cli.trust import store_for
    from merkle.signing import statements
    from merkle.signing.writing import write_signed

    key = signing_key(args)
    stmt = statements.bom_statement(facts.name, facts.digest_key, facts.root, doc)
    write_signed(args.output, statements.sign_statement(stmt, key), key, None, store_for(args))


def _summary(args: argparse.Namespace, facts: Facts) -> None:
    from merkle.bom.card import model_card

    with_sha = sum(f.sha256 is not None for f in facts.files)
    with_b3 = sum(f.blake3 is not None for f in facts.files)
    info = {
        "output": args.output,
        "signed": bool(args.sign),
        "subject": facts.name,
        "root": facts.root,
        "basis": facts.basis,
        "type": facts.kind,
        "files": len(facts.files),
        "sha256": with_sha,
        "blake3": with_b3,
        "licenses": list(facts.licenses) if facts.licenses is not None else None,
        "model_card": facts.kind == "machine-learning-model"
        and facts.card is not None
        and model_card(facts.card) is not None,
        "model_card_problem": facts.card_problem,
        "license_problem": facts.license_problem,
    }
    if args.json:
        emit_json(info)
        return
    if args.quiet:
        for what, problem in (("model card", facts.card_problem), ("licenses", facts.license_problem)):
            if problem:
                print(f"merkle: {what} not described: {shown(problem)}", file=sys.stderr)
        return
    where = f" -> {shown(args.output)}" if args.output not in (None, "-") else ""
    print(
        f"merkle: BOM of '{shown(facts.name)}' ({facts.kind}, {facts.basis}, root {facts.root[:16]}...): "
        f"{len(facts.files)} files, {with_sha} with SHA-256, {with_b3} with BLAKE3"
        f"{', signed' if args.sign else ''}{where}",
        file=sys.stderr,
    )
    if facts.licenses:
        print(f"merkle: licenses from the verified model card: {shown(', '.join(facts.licenses))}", file=sys.stderr)
    if facts.card_problem:
        print(f"merkle: model card not described: {shown(facts.card_problem)}", file=sys.stderr)
    if facts.license_problem:
        print(f"merkle: licenses not described: {shown(facts.license_problem)}", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    """`merkle bom PATH --check SIGNED_BOM --key PUB`: the BOM's signature,
    then the tree against every claim it makes."""
    from merkle.bom.checking import Expected, check, expected
    from merkle.cli.trust import describe, store_for, trust_policy, verified_dict
    from merkle.signing.envelope import BundleFile
    from merkle.verifying.signed import open_signed

    if len(args.inputs) != 1:
        raise UsageError("--check BOM checks one tree: give PATH")
    if args.sign or args.sha256 or args.output:
        raise UsageError("--check reads a signed BOM: drop --sign, --sha256 and -o")
    _no_build_options(args, "--check reads the parameters the BOM signs")
    path = args.inputs[0]
    if not os.path.isdir(path):
        raise SourceError("cannot read: not a directory", path)
    found: list[Expected] = []

    def claims_of(verified: Verified) -> None:
        """The BOM's claims, read before the store keeps it: a BOM whose claims do not hold is never kept."""
        if verified.bom is None:
            raise UsageError("not a signed BOM (merkle bom --sign writes them)", args.check)
        found.append(expected(verified.bom, verified.name))

    bundle, policy, store = BundleFile.read(args.check), trust_policy(args), store_for(args)
    verified: Verified = open_signed(
        [bundle], policy, store, with_manifest=False, boms=True, accept=claims_of, keep=False
    )  # fmt: skip
    (claims,) = found
    report = check(path, claims, args.layout, args.revision, args.jobs, args.follow_symlinks)
    if report.ok and store is not None:  # kept only once every claim held, the records checked again under the lock
        open_signed([bundle], policy, store, with_manifest=False, boms=True)
    print_report(args, report, {"signature": verified_dict(verified)}, describe(verified) + " (a signed BOM)")
    return report.exit_code
