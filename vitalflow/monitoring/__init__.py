"""Monitoring: run metrics pushed to Prometheus, /metrics for servers, the local alerting stack."""
