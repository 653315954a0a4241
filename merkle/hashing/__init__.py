"""Hashing many bytes fast: the only place with threads.

- `engine`: chunked reads on a thread pool, leaf hashes and file roots
  (the C extension when built, `merkle._native` decides).
- `files`: `hash_file`, `hash_paths`, `hash_stream` and b3sum-style lines.
- `checkpoint`: resumable runs (authenticated, in the private user dir).
- `options`: HashOptions, how hashing runs (threads, progress,
  checkpoints, a cluster).
- `cluster`: the protocol a cluster implements to hash elsewhere
  (merkle.dask's DaskCluster); the engine's digests, byte for byte.
"""
