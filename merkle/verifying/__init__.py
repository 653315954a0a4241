"""Checking bytes against a manifest, signed or not.

- `tree`: a whole tree, a sparse checkout or chosen files -> Report.
- `signed`: the one trust path for bundles (`open_signed`), and
  `verify_signed`.
- `ranges`: a byte range of one file against its chunk tree.
- `reader`: `merkle.open`, a file object that returns only verified bytes.
- `audit`: a dataset in an object store, against its manifest.
- `diffing`: what changed between two manifests (files, chunk ranges).
"""
