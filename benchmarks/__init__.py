"""Benchmarks for vitalflow: pipeline throughput and memory (see benchmarks/README.md)."""
