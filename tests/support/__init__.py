"""Helpers for the tests, not tests: the `merkle` program in a child process and the checks of its output
(`cli`), Hugging Face layouts made by huggingface_hub's own code and git (`hf_layout`, `hf`), a spec-literal
RFC 6962 Merkle Tree Hash (`spec`), the published vectors (`vectors`).

Importable as `support` (pytest's `pythonpath` is tests/, so the source tree itself never lands on sys.path:
the pure-Python CI run imports the installed merkle).  tests/conftest.py has pytest rewrite their asserts, so
they report as a test's own do."""
