"""Self-serve SQL: DuckDB over every layer, a real Trino, a CLI and a web console, read-only."""
