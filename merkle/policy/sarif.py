"""Policy results as SARIF 2.1.0 (docs/policy.md, P10): one rule
descriptor and one result per rule the policy states, `kind` pass or fail,
located at the line of the policy that states the rule (a model file has no
lines), with a fingerprint that stays the same from run to run for the same
rule, policy and subject, so code-scanning dashboards follow an alert."""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Sequence
from typing import Any, Final

from merkle.policy.document import Policy
from merkle.policy.rules import RULES, Result

SCHEMA: Final = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
PREDICATE_TYPE: Final = "https://docs.oasis-open.org/sarif/sarif/v2.1.0"
"""The in-toto predicate type of a signed policy result (issue 19: the SARIF URI)."""
INFORMATION: Final = "https://pypi.org/project/merkle-ml/"
ATLAS: Final = {
    "signers": ("AML.M0013", "AML.T0010"),
    "licenses": ("AML.T0010.003",),
    "age": ("AML.M0013",),
    "files": ("AML.M0011", "AML.M0016", "AML.T0011.000", "AML.T0018.002"),
    "model_card": ("AML.T0010.003",),
    "origin": ("AML.M0014", "AML.T0010.003", "AML.T0058"),
    "hashing": ("AML.M0014",),
}
"""The MITRE ATLAS techniques and mitigations each built-in rule speaks to (docs/atlas.md)."""
_DESCRIPTIONS: Final = dict(RULES)


def to_sarif(
    policy: Policy,
    results: Sequence[Result],
    subject: str,
    root_hex: str,
    version: str,
    when: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The SARIF log of one policy evaluation on one verified subject, at `when` (default now)."""
    from merkle.format.timestamps import format_time

    ended = format_time(when or datetime.datetime.now(datetime.timezone.utc))
    policy_uri = os.path.basename(policy.source)
    rules = []
    out = []
    for index, r in enumerate(results):
        builtin = not r.rule.startswith("rego:")
        text = _DESCRIPTIONS.get(r.rule, f"the Rego module {r.rule[5:]} denies nothing")
        tags = ["security", "supply-chain", *ATLAS.get(r.rule, ())]
        rules.append(
            {
                "id": f"merkle/{r.rule}",
                "name": r.rule,
                "shortDescription": {"text": text[:1024]},
                "fullDescription": {"text": f"{text}, checked on evidence that verified against its signatures"[:1024]},
                "help": {"text": f"merkle's docs/policy.md, {'rule ' + r.rule if builtin else 'Rego policies'}"},
                "defaultConfiguration": {"level": "error"},
                "properties": {"tags": tags, "security-severity": "8.0"},
            }
        )
        message = "; ".join(r.violations) if r.violations else f"{subject}: passed"
        fingerprint = hashlib.sha256(f"{r.rule}\0{policy.name}\0{subject}".encode()).hexdigest()[:16]
        out.append(
            {
                "ruleId": f"merkle/{r.rule}",
                "ruleIndex": index,
                "kind": "fail" if r.violations else "pass",
                "level": "error" if r.violations else "none",
                "message": {"text": message},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": policy_uri},
                            "region": {"startLine": max(1, r.line)},
                        }
                    }
                ],
                "partialFingerprints": {"primaryLocationLineHash": f"{fingerprint}:1"},
                "properties": {"subject": subject, "root": root_hex, "violations": list(r.violations)},
            }
        )
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "merkle",
                        "version": version,
                        "semanticVersion": version,
                        "informationUri": INFORMATION,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": f"merkle-policy/{policy.name}"},
                "invocations": [{"executionSuccessful": True, "endTimeUtc": ended}],
                "properties": {
                    "policy": {"name": policy.name, "sha256": policy.digest},
                    "subject": subject,
                    "root": root_hex,
                },
                "results": out,
            }
        ],
    }
