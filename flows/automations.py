"""Prefect automations as code: a failed, crashed or late vitalflow flow run sends a notification."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation, EventTrigger, SendNotification
from prefect.events.schemas.automations import Posture

from vitalflow.deploy import graph

PIPELINE_FLOW = "vitalflow-pipeline"
FLOWS = [flow.name for flow in graph.FLOWS]  # every flow prefect.yaml may deploy
BLOCK_NAME = "vitalflow-alerts"
_FLOW_RUNS = {"prefect.resource.id": "prefect.flow-run.*"}
_OUR_FLOWS = {"prefect.resource.role": "flow", "prefect.resource.name": FLOWS}
_BODY = ("Flow run {{ flow_run.name }} of {{ flow.name }} is {{ flow_run.state.name }}: "
         "{{ flow_run.state.message }}")


def automations(block_document_id: UUID, expected_interval: timedelta) -> list[Automation]:
    """Failed or crashed runs, runs that start late, and no completed pipeline run within the
    expected interval, each notifying through the given notification block."""

    def notify(subject: str) -> list[SendNotification]:
        return [SendNotification(block_document_id=block_document_id, subject=subject,
                                 body=_BODY)]

    return [
        Automation(
            name="vitalflow: flow run failed",
            description="A vitalflow flow run failed or crashed (Prefect's retries are over).",
            trigger=EventTrigger(match=_FLOW_RUNS, match_related=_OUR_FLOWS,
                                 expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                                 posture=Posture.Reactive, threshold=1),
            actions=notify("vitalflow flow run failed")),
        Automation(
            name="vitalflow: flow run late",
            description="A scheduled vitalflow flow run did not start on time.",
            trigger=EventTrigger(match=_FLOW_RUNS, match_related=_OUR_FLOWS,
                                 expect={"prefect.flow-run.Late"}, posture=Posture.Reactive,
                                 threshold=1),
            actions=notify("vitalflow flow run late")),
        Automation(
            name="vitalflow: no completed pipeline run",
            description="No vitalflow pipeline run completed within the expected interval.",
            trigger=EventTrigger(
                match=_FLOW_RUNS,
                match_related={"prefect.resource.role": "flow",
                               "prefect.resource.name": PIPELINE_FLOW},
                after={"prefect.flow-run.Completed"}, expect={"prefect.flow-run.Completed"},
                posture=Posture.Proactive, threshold=1, within=expected_interval),
            actions=notify("no vitalflow pipeline run completed")),
    ]


def apply(webhook_url: str, expected_interval: timedelta) -> list[UUID]:
    """Save a webhook notification block and (re)create the automations on the Prefect server
    of PREFECT_API_URL; returns their ids."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=BLOCK_NAME, url=webhook_url,
        json_data={"source": "prefect", "subject": "{{subject}}", "body": "{{body}}"})
    block_id = block.save(BLOCK_NAME, overwrite=True)
    ids = []
    for automation in automations(block_id, expected_interval):
        try:  # applying again replaces the earlier version
            Automation.read(name=automation.name).delete()
        except ValueError:
            pass
        ids.append(automation.create().id)
    return ids


if __name__ == "__main__":
    from vitalflow.config import load_settings

    settings = load_settings()
    created = apply(settings.alerting.webhook_url,
                    timedelta(hours=settings.monitoring.expected_run_interval_hours))
    print(f"{len(created)} automations created")
