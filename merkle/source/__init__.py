"""Where bytes come from: the one place (with hashing.engine) that opens
files or sockets.

- `local`: the confined, descriptor-relative file system: every open and
  descent stays under the root whatever races the walk.
- `walk`: a local tree, sorted, with the problems met on the way.
- `remote`: fsspec objects (S3, GCS, ...), listed and read.
- `listing`: one door for every source: a sorted list of objects and the
  opener that reads them.
- `ranged`: byte ranges of one file or object (partial checks, the reader).
- `userdir`: this user's private state directory (checkpoints, the
  attestation store), refused when others could write it.
"""
