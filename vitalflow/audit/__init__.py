"""The audit trail: append-only, hash-chained events in the control database, anchored."""
