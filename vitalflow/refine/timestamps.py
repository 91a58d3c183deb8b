"""FHIR date-times parsed set-wise in Arrow, in the shapes where that equals parse_datetime."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

# The shapes feeds send: a date, or a date and time to the second with an optional fraction of
# up to six digits, and then a zone (Z or +hh:mm) or none (UTC, as parse_datetime takes it).
# Every string of these shapes is one datetime.fromisoformat reads the same way once its date
# is a real one; anything else (another separator, hh:mm only, seven fraction digits, a 24th
# hour, ...) is left to parse_datetime.
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
_ZONED = rf"{_DATE}{_TIME}(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
_NAIVE = rf"{_DATE}(?:{_TIME})?$"
_DATE_ONLY = len("YYYY-MM-DD")
# An offset moves the time by less than a day, so dates a day inside Python's range (years 1
# to 9999) cannot leave it; the outermost two are left to parse_datetime.
_FIRST, _LAST = date(1, 1, 2), date(9999, 12, 30)
_PLACEHOLDER = "1970-01-01T00:00:00Z"
TIMESTAMP = pa.timestamp("us", tz="UTC")


def parse_timestamps(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(UTC timestamps, parsed): parsed is true where the value has one of the common shapes
    and is a real date-time, and there the timestamp equals parse_datetime's. Elsewhere (nulls
    included) parsed is false and the timestamp is null: what that means is the caller's."""
    zoned = pc.match_substring_regex(values, _ZONED)
    naive = pc.match_substring_regex(values, _NAIVE)
    parsed = pc.fill_null(pc.and_(pc.or_(zoned, naive),
                                  _real_dates(pc.utf8_slice_codeunits(values, 0, _DATE_ONLY))),
                          False)
    # Arrow's ISO 8601 cast wants a zone for a zoned type: a naive value is UTC, a date
    # alone its midnight. Values not parsed get a placeholder, so the cast cannot fail.
    suffix = pc.if_else(pc.equal(pc.utf8_length(values), _DATE_ONLY), "T00:00:00Z", "Z")
    text = pc.if_else(pc.fill_null(zoned, False), values,
                      pc.binary_join_element_wise(values, suffix, ""))
    stamps = pc.cast(pc.if_else(parsed, text, _PLACEHOLDER), TIMESTAMP)
    return pc.if_else(parsed, stamps, pa.scalar(None, TIMESTAMP)), parsed


def _real_dates(dates: pa.Array) -> pa.Array:
    """True where 'YYYY-MM-DD' is a calendar date within the range above. Each distinct date
    is read once by Python's own date.fromisoformat, so the calendar (month lengths, leap
    years, year 0) is exactly the one parse_datetime applies."""
    distinct = pc.unique(dates)
    real = []
    for text in distinct.to_pylist():
        try:
            real.append(_FIRST <= date.fromisoformat(text) <= _LAST)
        except (TypeError, ValueError):  # TypeError: null
            real.append(False)
    return pc.take(pa.array(real, pa.bool_()), pc.index_in(dates, value_set=distinct))
