"""`vitalflow merge ...`: review borderline pairs, link, unmerge, evaluate on generated data.

`review`, `link` and `unmerge` read and change the identity schema: they are for the identity
role only (the people who resolve patient identities), never for analysts.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vitalflow.merge.settings import MergeSettings, merge_settings

app = typer.Typer(help="Patient record merging (identity role only, except `evaluate`).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)
# Reviewers connect as themselves (a member of the identity role), not as the pipeline.
IDENTITY_URL_ENV = "VITALFLOW_IDENTITY_URL"

SourceSystem = Annotated[str | None, typer.Option(
    "--source-system", "-s", help="Source system of the records (default: "
    "merge.default_source_system).")]


def _settings() -> tuple[object, MergeSettings]:
    from vitalflow.config import load_settings

    settings = load_settings()
    return settings, merge_settings(settings)


def _connect(settings):
    import psycopg

    from vitalflow.services import EmbeddedPostgres

    url = (os.environ.get(IDENTITY_URL_ENV) or settings.database.url
           or EmbeddedPostgres(settings.paths.root, settings.database.embedded_port).up())
    return psycopg.connect(url, connect_timeout=10)


def _run(action):
    """Run `action(conn, merge settings)` in one transaction; known problems exit cleanly."""
    import psycopg

    from vitalflow.audit.trail import AuditUnavailable

    settings, merge = _settings()
    try:
        with _connect(settings) as conn:
            return action(conn, merge)
    except psycopg.errors.UndefinedTable:
        errors.print("[bold red]error:[/] record merging has not run on this project yet, so "
                     "there are no persons or pairs: enable it (merge.enabled = true, or "
                     "VITALFLOW__MERGE__ENABLED=true) and run `vitalflow run`")
        raise typer.Exit(code=1) from None
    except (ValueError, psycopg.OperationalError, psycopg.errors.InsufficientPrivilege,
            AuditUnavailable) as exc:
        errors.print(f"[bold red]error:[/] {type(exc).__name__}: "
                     f"{exc if isinstance(exc, ValueError) else 'database refused or unreachable'}")
        raise typer.Exit(code=1) from None


def _audit(conn, action: str, records: list[tuple[str, str]], result,
           person_id: str | None = None) -> None:
    """The decision's audit event, in its transaction (no event, no decision). Records are named
    by their pseudonyms: source ids are patient identifiers and stay out of the trail."""
    from vitalflow.audit.trail import AuditTrail
    from vitalflow.config import load_settings

    settings = load_settings()
    pseudonymised = conn.execute("SELECT to_regclass('identity.patient_identity')"
                                 ).fetchone()[0] is not None
    pseudonyms = [row[0] if row else "not yet pseudonymised" for row in (
        conn.execute("SELECT pseudonym FROM identity.patient_identity WHERE source_system = %s "
                     "AND source_id = %s", (settings.privacy.source_system, source_id)
                     ).fetchone() if pseudonymised else None for _, source_id in records)]
    AuditTrail(settings).record(action, conn=conn, target="identity.person_link", params={
        "records": pseudonyms, "person_id": person_id}, counts={
        "records": result.records, "persons": result.persons, "moved": len(result.moved)})


def _print_result(result) -> None:
    console.print(f"{result.records:,} records, {result.persons:,} persons, "
                  f"{len(result.moved):,} records changed person, "
                  f"{result.review_pairs:,} pairs to review")


@app.command()
def review(limit: Annotated[int, typer.Option(min=1, help="Pairs to show.")] = 20) -> None:
    """List borderline pairs, most likely match first, with both records' attributes.

    Shows names, birth dates and addresses on this terminal only (nothing is logged): for the
    identity role. Decide with `link` (same person) or `unmerge --record` (not the same)."""
    from vitalflow.merge import store

    rows = _run(lambda conn, _: store.review_with_attributes(conn, limit))
    if not rows:
        console.print("No pairs to review.")
        return
    for number, row in enumerate(rows, 1):
        table = Table(title=f"{number}. match probability {row['match_probability']:.3f}, "
                            f"weight {row['match_weight']:.2f}", title_justify="left")
        table.add_column("")
        table.add_column("record 1", overflow="fold")
        table.add_column("record 2", overflow="fold")
        for name in ("source_system", "source_id", "person_id", "given", "family", "birth_date",
                     "sex", "postcode", "address_line", "city", "identifier_system",
                     "identifier_value"):
            values = [row[f"{name}_{side}"] for side in ("l", "r")]
            table.add_row(name, *("" if v is None else str(v) for v in values))
        console.print(table)


@app.command()
def link(source_id_a: str, source_id_b: str, source_system: SourceSystem = None,
         other_system: Annotated[str | None, typer.Option(
             help="Source system of the second record, when it differs.")] = None) -> None:
    """Merge two source records into one person (a manual decision, kept for later runs)."""
    from vitalflow.merge import engine

    def action(conn, merge: MergeSettings):
        system = source_system or merge.default_source_system
        records = [(system, source_id_a), (other_system or system, source_id_b)]
        result = engine.link(conn, *records, merge)
        _audit(conn, "merge.link", records, result)
        return result
    _print_result(_run(action))


@app.command()
def unmerge(
    person_id: Annotated[str | None, typer.Argument(help="Undo the last merge into this "
                                                    "person.")] = None,
    record: Annotated[str | None, typer.Option(help="Instead: take this source record (id) "
                                               "out of its person.")] = None,
    source_system: SourceSystem = None,
) -> None:
    """Reverse a wrong merge; remembered as a 'never link' decision that later runs respect."""
    from vitalflow.merge import engine

    def action(conn, merge: MergeSettings):
        key = (source_system or merge.default_source_system, record) if record else None
        result = engine.unmerge(conn, merge, person_id=person_id, record=key)
        _audit(conn, "merge.unmerge", [key] if key else [], result, person_id)
        return result
    _print_result(_run(action))


@app.command()
def evaluate(
    patients: Annotated[int, typer.Option(min=10, help="Persons to generate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    duplicate_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of persons "
                                                   "with duplicate records.")] = 0.1,
) -> None:
    """Generate patients with duplicates, merge them, print pairwise precision and recall."""
    from vitalflow.merge.evaluate import evaluate_generated

    _, merge = _settings()
    result = evaluate_generated(patients, seed=seed, duplicate_share=duplicate_share,
                                settings=merge)
    table = Table(title=f"{result.records:,} Patient records of {result.persons:,} persons "
                        f"(seed {seed}); scored in {result.score_seconds:.1f} s")
    for column in ("merge threshold", "precision", "recall", "F1", "true pairs",
                   "merged pairs", "correct"):
        table.add_column(column, justify="right")
    for threshold, s in result.by_threshold.items():
        marker = " *" if threshold == merge.match_probability else ""
        table.add_row(f"{threshold:g}{marker}", f"{s.precision:.4f}", f"{s.recall:.4f}",
                      f"{s.f1:.4f}", f"{s.true_pairs:,}", f"{s.predicted_pairs:,}",
                      f"{s.correct_pairs:,}")
    console.print(table)
    console.print(f"* merge.match_probability; review from {merge.review_probability:g}")


if __name__ == "__main__":
    app()
