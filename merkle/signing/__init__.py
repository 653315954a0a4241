"""Keys, DSSE envelopes and in-toto statements, OpenSSF bundles, the trust
decision and the attestation store.

- `keys`: private and public keys, signatures, key ids.
- `envelope`: the DSSE envelope in a Sigstore bundle (bytes <-> Bundle).
- `statements`: merkle's in-toto statement, signing it, reading it back.
- `oms`: OpenSSF model-signing's statement.
- `trust`: the one trust decision (no I/O): signatures, identities,
  thresholds, expiry, rollback.
- `attestations`: this machine's store of verified bundles and rollback
  records.
- `documents`: a file given where a manifest or bundle is expected.
- `writing`: signing to disk: the signer's own check, the bundle and its
  companions written, the store told.
"""
