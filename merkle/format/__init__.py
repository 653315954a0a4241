"""Bytes <-> validated objects: every file merkle writes or reads, parsed
strictly (docs/format.md's numbered rules), with no I/O beyond reading and
writing the one file asked for.

- `manifest`: the manifest (files, roots, parameters) and its summary.
- `leaves`: the leaf sidecar (MANIFEST.leaves): every file's chunk hashes.
- `fileproof`: a file's inclusion proof in the dataset tree.
- `paths`: which names a manifest may hold (rules P1-P7).
- `strictjson`: JSON in (duplicate keys, NaN refused) and canonical JSON out.
- `timestamps`, `tensors`: RFC 3339 times; safetensors headers.
"""
