"""Where a manifest's files come from (docs/hf.md, rule M6): the `origin`
record of a v2 manifest, a Hugging Face Hub repository at one commit.

The record is part of the manifest format, so its rules live here, with the
one check of a Hub repository id (`ORG/NAME`) that the builder's `repo_id`,
the cache lookup and the manifest parser all apply.  Reading a checkout
from disk is merkle.hf's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from merkle.errors import FormatError, UnsupportedError
from merkle.format.strictjson import exact_keys

ORIGIN_KEYS: Final = ("type", "repo", "repo_type", "revision")
REPO_TYPES: Final = ("model", "dataset", "space")
_REVISION: Final = re.compile("[0-9a-f]{40}")
_REPO_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")


def is_repo_id(repo: object) -> bool:
    """Whether `repo` is a Hub repository id: `NAME` or `ORG/NAME`, each part
    at most 96 letters, digits and `._-`, starting with a letter or digit,
    with no `..` or `--` (a cache folder's name spells `/` as `--`)."""
    return isinstance(repo, str) and bool(_REPO_ID.fullmatch(repo)) and ".." not in repo and "--" not in repo


def check_repo_id(repo: object) -> str:
    """`repo`, or FormatError when it is not a Hub repository id (`is_repo_id`)."""
    if not is_repo_id(repo):
        raise FormatError(f"origin repo {repo!r} is not a Hub repository id")
    assert isinstance(repo, str)
    return repo


@dataclass(frozen=True)
class Origin:
    """A Hugging Face Hub repository at one commit.  `repo` is None when the
    checkout does not say (a local_dir) and the builder was not told."""

    revision: str
    repo: str | None = None
    repo_type: str = "model"
    type: str = "huggingface"

    def __post_init__(self) -> None:
        if self.type != "huggingface":
            raise UnsupportedError(f"unsupported origin type {self.type!r}")
        if not isinstance(self.revision, str) or not _REVISION.fullmatch(self.revision):
            raise FormatError(f"origin revision {self.revision!r} is not a 40-digit lower-case commit hash")
        if self.repo is not None:
            check_repo_id(self.repo)
        if self.repo_type not in REPO_TYPES:
            raise FormatError(f"origin repo_type {self.repo_type!r} is not one of {', '.join(REPO_TYPES)}")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "repo": self.repo, "repo_type": self.repo_type, "revision": self.revision}

    @classmethod
    def from_doc(cls, doc: Any) -> Origin:
        if not isinstance(doc, dict):
            raise FormatError("origin is not an object")
        exact_keys(doc, ORIGIN_KEYS, "origin")
        return cls(doc["revision"], doc["repo"], doc["repo_type"], doc["type"])

    def describe(self) -> str:
        return f"{self.repo or '(unnamed ' + self.repo_type + ' repo)'}@{self.revision}"
