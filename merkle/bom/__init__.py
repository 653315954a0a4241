"""ML bills of materials (docs/bom.md): CycloneDX documents of what verified.

    tree hashed here, tree verified against bundles, or bundles alone (describing)
      -> Facts (facts)
      -> model card front matter, read from verified bytes (card)
      -> CycloneDX JSON, validated (writing)
      -> optionally signed as an in-toto statement (merkle.signing.statements)
    signed BOM -> its claims (checking.expected) -> the tree checked (checking.check)

A BOM says only what a signature or this run's own hashing established:
the facts come from a manifest built here, a statement whose signatures
verified, and bytes that verified against either.  Whole-file SHA-256 and
BLAKE3 come from the same read as the tree (digests) or from the signed
statement (a Hub LFS identity, an OpenSSF resource).

Needs the `bom` extra (cyclonedx-python-lib).
"""
