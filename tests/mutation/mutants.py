"""The declared mutants: a file, an exact snippet in it and what the snippet becomes, with the
tests that should notice. A mutant that no test can notice carries the reason (`equivalent`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    area: str
    file: str
    original: str
    mutated: str
    tests: tuple[str, ...]
    equivalent: str | None = None  # why no test can tell it from the original


UNITS = ("tests/test_units.py", "tests/test_standardise.py")
METRICS = ("tests/test_units.py",)


def _pipeline(profile: str, *names: str) -> tuple[str, ...]:
    """Conformance pipeline tests on one profile (`make test` runs them on every profile)."""
    return tuple(f"tests/conformance/test_pipeline.py::{name}[{profile}]" for name in names)


_VALUES = ("test_category_and_age_boundaries", "test_patient_only_change_is_derived_again")
_CHANGES = ("test_patient_only_change_is_derived_again", "test_incremental_equals_full_rebuild",
            "test_rerun_changes_nothing")
DERIVED_VALUES = _pipeline("postgres", *_VALUES)
PORTABLE_VALUES = _pipeline("postgres-portable", *_VALUES)
CHANGES = (*_pipeline("postgres", *_CHANGES),
           "tests/test_pipeline.py::test_incremental_derive_rewrites_only_changed_patients",
           "tests/test_merge_pipeline.py::"
           "test_an_observation_leaving_a_merged_record_derives_its_person_again")
PORTABLE_CHANGES = _pipeline("postgres-portable", *_CHANGES)
VERSIONS = ("tests/test_pipeline.py::test_version_ranking_versionid_then_last_updated",
            "tests/test_pipeline.py::test_newer_version_replaces_older_in_any_order",
            "tests/test_pipeline.py::test_same_records_in_a_second_file_are_duplicates",
            "tests/test_pipeline.py::test_rerun_is_idempotent",
            *_pipeline("postgres-portable", "test_rerun_changes_nothing"))
PSEUDONYMS = ("tests/privacy/test_known_answers.py", "tests/privacy/test_pseudonymise.py")
WHITELIST = ("tests/test_whitelist.py",)
TERMINOLOGY = ("tests/terminology/test_check.py", "tests/test_terminology_pipeline.py")

CATALOG, METRICS_PY = "vitalflow/catalog.py", "vitalflow/derive/metrics.py"
DERIVE, PORTABLE = "vitalflow/derive/sql.py", "vitalflow/derive/run.py"
REFINE, PSEUDONYM = "vitalflow/refine/merge.py", "vitalflow/privacy/pseudonym.py"
WHITELIST_PY = "vitalflow/refine/whitelist.py"
CHECK, STAGE = "vitalflow/terminology/check.py", "vitalflow/refine/terminology_step.py"


def _m(area: str, file: str, tests: tuple[str, ...], *pairs: tuple[str, str],
       equivalent: str | None = None) -> list[Mutant]:
    return [Mutant(area, file, original, mutated, tests, equivalent)
            for original, mutated in pairs]


MUTANTS: list[Mutant] = [
    *_m("units", CATALOG, UNITS,
        ('"[in_i]": 2.54', '"[in_i]": 2.5'),
        ('"[lb_av]": 0.45359237', '"[lb_av]": 0.4536'),
        ('"g": 0.001', '"g": 0.01'),
        ("low=0.2, high=650.0", "low=2.0, high=650.0"),
        ("low=20.0, high=275.0", "low=20.0, high=250.0"),
        ("else value * factor", "else value / factor"),
        ("_UNIT_ALIASES.get(unit.lower(), unit)", "_UNIT_ALIASES.get(unit, unit)"),
        ("if position % 2 == 0:", "if position % 2 == 1:"),
        ("return (10 - total % 10) % 10", "return 10 - total % 10"),
        ("digit = digit // 10 + digit % 10", "digit = digit % 10")),
    *_m("categories", METRICS_PY, METRICS,
        ("if bmi_value < 18.5:", "if bmi_value <= 18.5:"),
        ("if bmi_value < 25:", "if bmi_value <= 25:"),
        ("if bmi_value < 30:", "if bmi_value <= 30:"),
        ("if age_years < ADULT_AGE:", "if age_years <= ADULT_AGE:"),
        ("((on.month, on.day) < (birth.month, birth.day))",
         "((on.month, on.day) <= (birth.month, birth.day))"),
        ('[f"-{high - 1}" for high in bands[1:]]', '[f"-{high}" for high in bands[1:]]'),
        ("        if age_years >= low:", "        if age_years > low:"),
        ("return weight_kg / (height_cm / 100.0) ** 2",
         "return weight_kg / (height_cm / 100.0) ** 3")),
    *_m("categories", DERIVE, DERIVED_VALUES,
        ("WHEN {bmi} < 18.5 THEN", "WHEN {bmi} <= 18.5 THEN"),
        ("WHEN {bmi} < 25 THEN", "WHEN {bmi} <= 25 THEN"),
        ("WHEN {bmi} < 30 THEN", "WHEN {bmi} <= 30 THEN"),
        ("WHEN {age} < 18 THEN", "WHEN {age} <= 18 THEN"),
        ('f"WHEN {age} >= {low} THEN', 'f"WHEN {age} > {low} THEN')),
    *_m("categories", PORTABLE, PORTABLE_VALUES,
        ('day({later}) < month({earlier}) * 100', 'day({later}) <= month({earlier}) * 100'),
        ('to_days(CASE WHEN age_years < 18 "', 'to_days(CASE WHEN age_years <= 18 "'),
        ("AND h.effective_at <= w.effective_at", "AND h.effective_at < w.effective_at"),
        ("ORDER BY effective_at DESC, observation_id DESC) = 1),",
         "ORDER BY effective_at, observation_id DESC) = 1),"),
        ('bmi = "CASE WHEN has_height THEN value / ((h_value / 100.0) ^ 2) END"',
         'bmi = "CASE WHEN has_height THEN value / ((h_value / 100.0) ^ 3) END"')),
    *_m("change detection", PORTABLE, PORTABLE_CHANGES,
        ('changed.column("person_key").combine_chunks(), pa.array(touched, pa.string())]))',
         'pa.array(touched, pa.string())]))'),
        ('("change_seq", ">", since), ("measure", "in", _MEASURES)])',
         '("change_seq", ">", since), ("measure", "in", ["body_weight"])])')),
    *_m("change detection", PORTABLE, PORTABLE_CHANGES,
        ('("change_seq", ">", since), ("measure", "in", _MEASURES)])',
         '("change_seq", ">=", since), ("measure", "in", _MEASURES)])'),
        equivalent="also re-reads the observations of the last change already derived; "
                   "recomputing a person gives the same row, and only differing rows are "
                   "written, so only the work grows"),
    *_m("version ranking", REFINE, VERSIONS,
        ('return f"({rank(new)}) > ({rank(old)})"', 'return f"({rank(new)}) < ({rank(old)})"'),
        ('return f"({rank(new)}) > ({rank(old)})"', 'return f"({rank(new)}) >= ({rank(old)})"'),
        ("ORDER BY {rank(order=' DESC')}, raw_record_id", "ORDER BY {rank()}, raw_record_id"),
        ('"coalesce({t}version, -1)", ', ""),
        ("\"coalesce({t}last_updated, '-infinity'::timestamptz)\",\n               ", "")),
    *_m("pseudonyms", PSEUDONYM, PSEUDONYMS,
        ('_prefix(b"patient", source_system)', '_prefix(b"patients", source_system)'),
        ('_prefix(b"date-shift", source_system)', '_prefix(b"patient", source_system)'),
        ('b"\\x00".join((domain, source_system.encode(), b""))',
         'b"\\x00".join((domain, source_system.encode()))'),
        ("PREFIX + d.hex()[:32]", "PREFIX + d.hex()[:31]"),
        ('int.from_bytes(d[:8], "big")', 'int.from_bytes(d[:8], "little")'),
        ("% (2 * max_days + 1) - max_days", "% (2 * max_days) - max_days"),
        ("if position == 0 and self.privacy.date_shift_days:",
         "if position == 1 and self.privacy.date_shift_days:")),
    *_m("pseudonyms", "vitalflow/privacy/keys.py", PSEUDONYMS,
        ('hmac.digest(secret, b"key-id", "sha256").hex()[:12]',
         'hmac.digest(secret, b"key id", "sha256").hex()[:12]')),
    *_m("whitelist", WHITELIST_PY, WHITELIST,
        ('high_exclusive = kind == "timestamp" and _is_date_only(rule.max)',
         "high_exclusive = False"),
        ("pc.greater_equal(values, low)", "pc.greater(values, low)"),
        ("compare = pc.less if criterion.high_exclusive else pc.less_equal",
         "compare = pc.less_equal if criterion.high_exclusive else pc.less"),
        ('return pc.fill_null(meets, rule.missing == "pass")',
         'return pc.fill_null(meets, rule.missing != "pass")'),
        ("pc.less(pc.day(at), pc.day(births))", "pc.less_equal(pc.day(at), pc.day(births))"),
        ("return rule.resource is None or resource_type in rule.resource", "return True"),
        ('pc.equal(table.column("code_system"), criterion.system)',
         'pc.not_equal(table.column("code_system"), criterion.system)')),
    *_m("terminology verdicts", CHECK, TERMINOLOGY,
        ('ok = _first(p, "result") is True', "ok = True"),
        ('        return "pending", None, str(answer)',
         '        return "invalid", None, str(answer)'),
        ('_UNUSABLE = {"unmatched", "disjoint", "not-related-to"}',
         '_UNUSABLE = {"disjoint", "not-related-to"}')),
    *_m("terminology verdicts", STAGE, TERMINOLOGY,
        ('wait = pc.equal(outcome, "pending")', 'wait = pc.equal(outcome, "invalid")')),
    *_m("terminology verdicts", STAGE, TERMINOLOGY,
        ('keep = pc.is_in(outcome, pa.array(["valid", "mapped"]))',
         'keep = pc.is_in(outcome, pa.array(["valid"]))'),
        equivalent="the observations given a verdict here are LOINC-coded (feeder codes were "
                   "translated before standardising), and check_codings answers 'mapped' only "
                   "for codes of another system, so no row has that outcome here"),
]
