"""Prefect flows: thin wiring over vitalflow.pipeline."""
