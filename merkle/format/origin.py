"""Where a manifest's files come from (docs/hf.md, rules M6 and G1): the
`origin` record of a v2 manifest, a Hugging Face Hub repository at one
commit, or a git repository at one commit (a work tree `merkle build` read).

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
GIT_ORIGIN_KEYS: Final = ("type", "url", "revision", "dirty")
MAX_URL: Final = 2048
_GIT_REVISION: Final = re.compile("[0-9a-f]{40}|[0-9a-f]{64}")
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


@dataclass(frozen=True)
class GitOrigin:
    """A git repository at one commit (docs/hf.md, G1): the work tree a
    build read, its remote's URL (without credentials; None when it has
    none) and whether the files differed from the commit (`dirty`: a file
    changed, added or removed)."""

    revision: str
    url: str | None
    dirty: bool
    type: str = "git"

    def __post_init__(self) -> None:
        if self.type != "git":
            raise UnsupportedError(f"unsupported origin type {self.type!r}")
        if not isinstance(self.revision, str) or not _GIT_REVISION.fullmatch(self.revision):
            raise FormatError(f"origin revision {self.revision!r} is not a 40- or 64-digit lower-case commit hash")
        if self.url is not None and (
            not isinstance(self.url, str)
            or not 0 < len(self.url) <= MAX_URL
            or any(ord(c) < 32 or ord(c) == 127 for c in self.url)
        ):
            raise FormatError(f"origin url {str(self.url)[:80]!r} is not a URL of at most {MAX_URL} characters")
        if not isinstance(self.dirty, bool):
            raise FormatError("origin dirty is not true or false")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "url": self.url, "revision": self.revision, "dirty": self.dirty}

    @classmethod
    def from_doc(cls, doc: Any) -> GitOrigin:
        if not isinstance(doc, dict):
            raise FormatError("origin is not an object")
        exact_keys(doc, GIT_ORIGIN_KEYS, "origin")
        return cls(doc["revision"], doc["url"], doc["dirty"], doc["type"])

    def describe(self) -> str:
        return f"{self.url or '(a git repository)'}@{self.revision}" + (" (dirty)" if self.dirty else "")


AnyOrigin = Origin | GitOrigin
"""What a manifest's `origin` may be."""


def origin_from_doc(doc: Any) -> AnyOrigin:
    """The origin record `doc`, by its `type`."""
    if isinstance(doc, dict) and doc.get("type") == "git":
        return GitOrigin.from_doc(doc)
    return Origin.from_doc(doc)
