"""Where bytes come from: the one place (with hashing.engine) that opens
files or sockets.

- `local`: the confined, descriptor-relative file system: every open and
  descent stays under the root whatever races the walk.
- `walk`: a local tree, sorted, with the problems met on the way.
- `remote`: fsspec objects (S3, GCS, ...), listed and read.
- `layouts`: how a local directory is read: its plain tree, or a layout an
  integration provides (a Hugging Face cache snapshot, a local_dir),
  found by name in a registry the core keeps; which one a verifier reads.
- `listing`: one door for every source: a sorted list of objects, the
  problems met, and how to open them (`Access`, which a worker can take:
  the one place the local or remote reader is chosen).
- `readers`: the one reader protocol and its local and fsspec readers.
- `userdir`: this user's private state directory (checkpoints, the
  attestation store), refused when others could write it.
"""
