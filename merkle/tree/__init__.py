"""The pure Merkle tree: hashers, RFC 6962 roots and levels, range proofs.

Bytes in, digests out: nothing here opens a file.  Everything above builds
on these three modules:

- `hasher`: the hash functions (BLAKE3, SHA-256) with RFC 6962's domain
  separation (0x00 leaf, 0x01 node).
- `rfc6962`: roots, levels, inclusion and consistency proofs.
- `ranges`: proofs for a run of leaves (a byte range of a file).
"""
