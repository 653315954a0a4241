"""License policy: the `license:` of a model card, read only from verified bytes
(docs/hf.md, rules L1-L4).

A Hub model card is README.md with YAML front matter between `---` lines;
its `license` is an id such as `mit` or `apache-2.0`, or `other` with
`license_name` (and `license_link`) naming it.  The caller hands over bytes
that have already been checked against a signed manifest or a Hub identity;
nothing here reads a file, so what is parsed is exactly what was verified.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from merkle.errors import FormatError, PolicyError, UsageError, install_hint, option

README: Final = "README.md"
MAX_README_BYTES: Final = 16 << 20
MAX_FRONT_MATTER: Final = 1 << 20
_FRONT: Final = re.compile(
    rb"\A(?:\xef\xbb\xbf)?[ \t\r\n]*---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE
)
_LICENSE_ID: Final = re.compile(r"(other:)?[a-z0-9][a-z0-9.+_-]{0,127}")


def parse_allowed(allowed: str | Iterable[str]) -> tuple[str, ...]:
    """`mit,apache-2.0` (or several such options) as normalised license ids;
    `other:NAME` allows a custom license (`license: other`, `license_name: NAME`)."""
    items = [allowed] if isinstance(allowed, str) else list(allowed)
    ids = tuple(dict.fromkeys(p.strip().lower() for item in items for p in item.split(",") if p.strip()))
    if not ids:
        raise UsageError(f"{option('allowed')} needs at least one license id")
    bad = [a for a in ids if not _LICENSE_ID.fullmatch(a)]
    if bad:
        raise UsageError(f"{bad[0]!r} is not a license id (such as mit, apache-2.0 or other:NAME)")
    return ids


def _card_loader(yaml: Any) -> Any:
    """PyYAML's safe loader, refusing what a model card has no use for and an
    attacker has: aliases (a few hundred bytes that expand without bound)
    and a key given twice (`license: gpl-3.0` then `license: mit`: a reader
    sees the first, a loader keeps the last)."""

    class Loader(yaml.SafeLoader):  # type: ignore[misc]
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.MarkedYAMLError(None, None, "aliases are not allowed", self.peek_event().start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    raise yaml.MarkedYAMLError(None, None, "a key that is not a scalar", key_node.start_mark)
                if key in seen:
                    raise yaml.MarkedYAMLError(None, None, f"{key!r} is given twice", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return Loader


def front_matter(data: bytes, source: str = README) -> dict[str, Any]:
    """The model card's YAML metadata; {} when it has none.  FormatError,
    naming `source`, when the front matter is not YAML or not a mapping."""
    m = _FRONT.match(data)
    if m is None:
        return {}
    block = m.group(1)
    if len(block) > MAX_FRONT_MATTER:
        raise FormatError(f"front matter is larger than {MAX_FRONT_MATTER} bytes", source)
    try:
        import yaml
    except ImportError as e:
        raise UsageError(f"reading a model card's license needs PyYAML: {install_hint('hf')}") from e
    try:
        meta = yaml.load(block.decode("utf-8"), Loader=_card_loader(yaml))  # noqa: S506 - a safe loader
    except UnicodeDecodeError as e:
        raise FormatError(f"front matter is not UTF-8 (byte {e.start})", source) from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise FormatError(f"front matter is not valid YAML{where}: {problem}", source) from e
    except RecursionError as e:
        raise FormatError("front matter is nested too deeply", source) from e
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise FormatError("front matter is not a mapping of keys to values", source)
    return meta


def card_licenses(meta: dict[str, Any], source: str = README) -> tuple[str, ...]:
    """The license ids a model card declares; `other` with a `license_name`
    becomes `other:NAME`, so a custom license never passes for a standard id
    of the same name.  PolicyError when there is none."""
    value = meta.get("license")
    if value is None or value == "" or value == []:
        raise PolicyError("model card declares no license (no 'license:' in its front matter)", source)
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise FormatError("'license' must be a license id or a list of them", source)
    out = []
    for v in values:
        v = v.strip().lower()
        if v == "other":
            name = meta.get("license_name")
            if isinstance(name, str) and name.strip():
                v = "other:" + name.strip().lower()
        out.append(v)
    return tuple(dict.fromkeys(out))


def check_license(readme: bytes, allowed: Sequence[str], source: str = README) -> tuple[str, ...]:
    """The card's licenses when every one is in `allowed` (a dual-licensed
    card lists several: all must be acceptable); PolicyError otherwise.
    Fails closed: no front matter or no license field is a refusal."""
    licenses = card_licenses(front_matter(readme, source), source)
    refused = [lic for lic in licenses if lic not in allowed]
    if refused:
        raise PolicyError(f"license {', '.join(refused)} is not allowed (allowed: {', '.join(allowed)})", source)
    return licenses
