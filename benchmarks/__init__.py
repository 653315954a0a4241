"""Throughput and memory benchmarks: merkle against b3sum and openssl.

Run `python -m pytest benchmarks -q` (full) or with MERKLE_BENCH_QUICK=1 (CI);
docs/benchmarks.md explains the cases and the last measured table.
"""
