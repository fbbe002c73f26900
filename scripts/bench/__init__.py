"""Benchmarks: ``python -m scripts.bench.<name> --help`` from the repository root."""
