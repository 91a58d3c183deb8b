"""vitalflow: FHIR clinical data through raw, refined and derived layers."""

__version__ = "0.1.0"
