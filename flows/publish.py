"""What a flow run tells Prefect: table-updated events, the refine guard, the summary artifact."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prefect.artifacts import create_markdown_artifact
from prefect.concurrency.sync import concurrency
from prefect.events import emit_event

from vitalflow.deploy.graph import STAGES, TABLE_UPDATED, table_resource
from vitalflow.deploy.report import artifact_key, summary_markdown


def refine_limit(profile: str) -> str:
    """The global concurrency limit every refine of the profile holds, whatever started it."""
    return f"vitalflow-refine-{profile}"


@contextmanager
def guard_refine(profile: str) -> Iterator[None]:
    """One refine at a time per profile across every deployment, schedule and trigger (the
    database's pipeline lock still serialises writers that bypass Prefect). The limit is
    created on first use, so a fresh server needs no set-up step."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(refine_limit(profile), 1)
    with concurrency(refine_limit(profile), occupy=1, strict=True):
        yield


def table_updated(stage: str, profile: str) -> None:
    """One `vitalflow.table.updated` event per table the stage writes: the owner flows of the
    tables that read them are triggered by it (prefect.yaml)."""
    for table in sorted(STAGES[stage].writes):
        emit_event(event=TABLE_UPDATED,
                   resource={"prefect.resource.id": table_resource(table),
                             "prefect.resource.name": table, "vitalflow.profile": profile})


def publish_summary(summary: dict) -> None:
    """The run summary as a Markdown artifact, one key per profile so the UI keeps its history."""
    create_markdown_artifact(summary_markdown(summary),
                             key=artifact_key(summary["storage"]["profile"]),
                             description=f"vitalflow run {summary['run_id']}")


def settle(changed_at: str | None, debounce_seconds: float) -> None:
    """Trailing-edge debounce: a reactive trigger fires at the first event of its window and
    drops the rest, so the owner flow it starts waits for the window's end; then everything
    those dropped events announced is committed and is derived by this run."""
    if not changed_at or debounce_seconds <= 0:
        return
    changed = datetime.fromisoformat(changed_at)
    wait = changed.timestamp() + debounce_seconds - datetime.now(UTC).timestamp()
    if wait > 0:
        time.sleep(min(wait, debounce_seconds))
