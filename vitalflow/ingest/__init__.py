"""Ingest: input files into the raw layer, once per content (store.py states the contract).

store.py (the RawStore contract, Batch) · parquet.py (files; also reads input files) · iceberg.py
(raw on Iceberg) · run.py (the stage)."""

from vitalflow.ingest.store import RAW_SCHEMA, Batch, IngestError, IngestResult, RawStore

__all__ = ["RAW_SCHEMA", "Batch", "IngestError", "IngestResult", "RawStore"]
