"""A Hugging Face model card's front matter as CycloneDX sees it (docs/bom.md B4, B5).

Pure: the caller hands over the front matter of a README.md whose bytes
verified (merkle.hf.verified_readme, merkle.hf.license.front_matter); nothing
here reads a file.  `licenses` turns the card's license ids into CycloneDX
license choices; `model_card` keeps the keys CycloneDX's `modelCard` has a
place for, and nothing the card does not say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

CARD_PROPERTY: Final = "huggingface:"
"""The namespace of the model card's own keys kept as modelCard properties."""
KEPT_KEYS: Final = ("library_name", "base_model", "language", "tags", "metrics", "license_name", "license_link")
"""Front-matter keys kept as `huggingface:KEY` properties of the modelCard (strings, or lists of them)."""
MAX_VALUE: Final = 1024
"""Longest card value kept; a longer one is left out (a BOM is an inventory, not a copy of the card)."""


def licenses(ids: Iterable[str], meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """CycloneDX license choices for the card's license ids
    (merkle.hf.license.card_licenses): an SPDX id where the Hub's id is one
    (case-insensitively: `apache-2.0` is `Apache-2.0`), else a license by
    name; `other:NAME` stays a name with its `other:` prefix, so a custom
    license never passes for the SPDX license of the same name (B5)."""
    from cyclonedx.spdx import fixup_id

    out: list[dict[str, Any]] = []
    for lic in ids:
        spdx = None if lic.startswith("other:") else fixup_id(lic)
        if spdx is not None:
            out.append({"license": {"id": spdx}})
            continue
        entry: dict[str, Any] = {"name": lic}
        link = meta.get("license_link")
        if lic.startswith("other:") and isinstance(link, str) and link.startswith(("https://", "http://")):
            entry["url"] = link
        out.append({"license": entry})
    return out


def _strings(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v.strip() and len(v) <= MAX_VALUE]


def model_card(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The CycloneDX 1.6 `modelCard` of a card's front matter, or None when
    the card says nothing it has a place for: `pipeline_tag` is the task,
    `datasets` the training datasets, the KEPT_KEYS properties."""
    params: dict[str, Any] = {}
    task = _strings(meta.get("pipeline_tag"))
    if task:
        params["task"] = task[0]
    datasets = _strings(meta.get("datasets"))
    if datasets:
        params["datasets"] = [{"type": "dataset", "name": d} for d in datasets]
    props = [{"name": CARD_PROPERTY + key, "value": v} for key in KEPT_KEYS for v in _strings(meta.get(key))]
    card: dict[str, Any] = {}
    if params:
        card["modelParameters"] = params
    if props:
        card["properties"] = props
    return card or None
