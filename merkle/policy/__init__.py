"""Policies on verified evidence (docs/policy.md): a policy file
(`document`), what a file is from its bytes (`kinds`), the evidence of a
tree that verified (`evidence`), and the built-in rules (`rules`).

A policy runs only after the signatures and the content verified, on
evidence read from verified bytes: it never sees unverified data.
"""
