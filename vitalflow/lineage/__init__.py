"""Lineage: OpenLineage events from every run, and tracing any value back to its file and line."""
