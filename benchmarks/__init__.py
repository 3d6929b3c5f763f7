"""Benchmarks: one module per subject; run `python -m benchmarks` for the whole suite."""
