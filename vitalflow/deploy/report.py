"""The run summary as Markdown, for the Prefect artifact every pipeline run publishes."""

from __future__ import annotations

from vitalflow.tables import PATIENT_BMI_LATEST

OUTCOMES = ("read", "refined", "quarantined", "filtered", "duplicates", "pending")
DICTIONARY_DOC = "docs/dictionary.md"
LINEAGE_DOC = "docs/lineage.md"


def artifact_key(profile: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    cleaned = "".join(c if c.isalnum() else "-" for c in profile.lower())
    return f"vitalflow-run-summary-{cleaned}"


def _table(header: tuple[str, ...], rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return lines


def summary_markdown(summary: dict) -> str:
    """Counts per outcome and resource, quarantine reasons, derived rows, and where to look
    next (the lineage trace and the data dictionary). Holds no patient identifier: counts,
    reason codes and table names only."""
    storage = summary.get("storage", {})
    lines = [f"# vitalflow run {summary['run_id']}", "",
             f"Storage profile: `{storage.get('profile', '?')}`", "", "## Records by outcome", ""]
    counts = summary.get("counts") or {}
    lines += _table(("resource", *OUTCOMES),
                    [(r, *(f"{c.get(k, 0):,}" for k in OUTCOMES)) for r, c in counts.items()])
    if not counts:
        lines += ["", "No new records this run."]
    lines += ["", "## Quarantine reasons", ""]
    reasons = summary.get("quarantine_reasons") or {}
    lines += _table(("reason", "records"), [(f"`{k}`", f"{v:,}") for k, v in reasons.items()]
                    ) if reasons else ["None this run."]
    derive = summary.get("derive") or {}
    if derive:
        lines += ["", "## Derived", ""]
        lines += _table(("figure", "value"), [(k, v) for k, v in derive.items()])
    lines += ["", "## Where to look next", "",
              (f"- Lineage of a derived value: `vitalflow lineage trace "
               f"{PATIENT_BMI_LATEST.qualified_name} --key <patient_key>` ({LINEAGE_DOC})"),
              (f"- What each table and column means: `vitalflow dictionary build --out DIR` "
               f"({DICTIONARY_DOC})")]
    return "\n".join(lines) + "\n"
