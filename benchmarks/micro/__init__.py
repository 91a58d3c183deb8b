"""Micro-benchmarks (pytest-benchmark) of vitalflow's per-record hot functions."""
