"""Pseudonymisation between raw and refined: keyed pseudonyms, generalisation, identity schema."""
