"""FHIR terminology: a client with caching and a circuit breaker, and a local server."""
