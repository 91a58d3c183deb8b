"""The data dictionary: every table and column explained, built from vitalflow/tables.py.

`as_dict()` returns it as one JSON-able document (what the SQL console shows beside its editor).
"""

from vitalflow.dictionary.model import as_dict

__all__ = ["as_dict"]
