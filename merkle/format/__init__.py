"""Bytes <-> validated objects: every file merkle writes or reads, parsed
strictly (docs/format.md's numbered rules), with no I/O beyond reading and
writing the one file asked for.

- `manifest`: the manifest (files, roots, parameters) and its summary.
- `origin`, `hub`, `zarr`: the records a v2 manifest may carry: where the
  files come from (a Hub repository at a commit, and the one repository id
  check), each file's Hub identity (and git-lfs pointers), a zarr store's
  arrays with their subtree roots.  Pure: the integrations that read
  checkouts and stores (merkle.hf, merkle.zarr) build on them.
- `leaves`: the leaf sidecar (MANIFEST.leaves): every file's chunk hashes.
- `fileproof`: a file's inclusion proof in the dataset tree.
- `paths`: which names a manifest may hold (rules P1-P7).
- `strictjson`: JSON in (duplicate keys, NaN refused) and canonical JSON out.
- `timestamps`, `tensors`: RFC 3339 times; safetensors headers.
"""
