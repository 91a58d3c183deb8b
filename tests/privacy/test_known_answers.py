"""Known answers: a fixed key gives these exact pseudonyms, key id and date shifts. Any change to
the algorithm changes every stored pseudonym, so it must fail here (and come with `rekey`)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa

from vitalflow.privacy.keys import key_from_text
from vitalflow.privacy.pseudonym import Pseudonymiser, pseudonym, shift_days, shifts
from vitalflow.privacy.settings import PrivacySettings
from vitalflow.refine.standardise import PATIENT_STAGE
from vitalflow.tables import PATIENT

KEY = key_from_text("known-answer-key-" + "a" * 32, "test")


def test_key_id():
    assert KEY.key_id == "c323994bd683"


def test_pseudonyms():
    assert pseudonym(KEY, "fhir", "patient-123") == "p_26fc6cb64d8e850a9e09955ce6a2efb0"
    # the source system is part of the message: the same id elsewhere is someone else
    assert pseudonym(KEY, "urn:oid:1.2.3", "patient-123") == "p_dc5d321b88a769802c9ecfc1a15b9c5f"


def test_date_shifts():
    assert shift_days(KEY, "fhir", "patient-123", 365) == 106
    assert shifts(KEY, "fhir", ["a", "b", "c"], 30) == [-19, 12, 8]
    assert shift_days(KEY, "fhir", "patient-123", 0) == 0


def test_refined_patient_row():
    """The whole refined form of one patient: pseudonym, shifted then generalised birth date."""
    staged = pa.Table.from_pylist(
        [{"patient_key": "patient-123", "gender": "female", "birth_date": date(1980, 10, 1),
          "deceased_at": datetime(2020, 3, 1, 12, tzinfo=UTC), "content_hash": "h",
          "raw_record_id": "b-0"}],
        schema=pa.schema([pa.field(c.name, c.arrow_type) for c in PATIENT_STAGE]))
    privacy = PrivacySettings(date_shift_days=365, birth_date="month")
    (row,) = Pseudonymiser(KEY, privacy).apply(staged, PATIENT).table.to_pylist()
    assert row["patient_key"] == "p_26fc6cb64d8e850a9e09955ce6a2efb0"
    assert row["deceased_at"] == datetime(2020, 6, 15, 12, tzinfo=UTC)  # + 106 days
    assert row["birth_date"] == date(1981, 1, 1)  # 1981-01-15, then to its month
