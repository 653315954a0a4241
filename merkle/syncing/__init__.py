"""Delta sync: bring a local copy to a signed version, fetching only the
chunks it lacks (`merkle sync`, docs/sync.md)."""
