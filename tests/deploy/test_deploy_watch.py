"""The watcher finds settled new files in the inbox and under an S3 prefix (the embedded
object store), once; and the run summary's Markdown for the artifact."""

from __future__ import annotations

import os
import stat

from vitalflow.deploy.report import artifact_key, summary_markdown
from vitalflow.deploy.watch import Watcher, s3_filesystem
from vitalflow.object_store import s3_options


def test_a_file_is_reported_once_when_it_has_settled(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    watcher = Watcher(tmp_path / "state" / "reported.json", folder=inbox)
    (inbox / "Patient.ndjson").write_text('{"resourceType": "Patient"}\n')
    (inbox / "_partial.ndjson").write_text("skipped, like ingest does\n")
    assert watcher.poll() == []  # first sight: maybe still being written
    (landed,) = watcher.poll()
    assert landed.path == (inbox / "Patient.ndjson").resolve()
    assert watcher.poll() == []
    growing = inbox / "Observation.ndjson"
    growing.write_text("{}\n")
    watcher.poll()
    with growing.open("a") as out:
        out.write("{}\n")
    os.utime(growing, ns=(1, 1))
    assert watcher.poll() == []  # changed since the last poll: not settled
    assert [x.path.name for x in watcher.poll()] == ["Observation.ndjson"]
    state = tmp_path / "state" / "reported.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    restarted = Watcher(state, folder=inbox)
    assert restarted.poll() == [] and restarted.poll() == []  # reported before the restart


def test_objects_under_the_s3_prefix_are_copied_and_reported(tmp_path, s3_server):
    fs = s3_filesystem(s3_options(s3_server.root))
    prefix = f"vitalflow/watch-test-{tmp_path.name}/raw"
    with fs.open_output_stream(f"{prefix}/2024/Patient.ndjson") as out:
        out.write(b'{"resourceType": "Patient", "id": "x"}\n')
    watcher = Watcher(tmp_path / "reported.json", s3=fs, s3_prefix=prefix + "/",
                      landing=tmp_path / "landing")
    assert watcher.poll() == []
    (landed,) = watcher.poll()
    assert landed.uri == f"s3://{prefix}/2024/Patient.ndjson"
    assert landed.path.read_bytes() == b'{"resourceType": "Patient", "id": "x"}\n'
    assert stat.S_IMODE(landed.path.stat().st_mode) == 0o600
    assert watcher.poll() == []


def test_the_summary_markdown():
    summary = {"run_id": "r1", "storage": {"profile": "mixed"},
               "counts": {"Observation": {"read": 5, "refined": 3, "quarantined": 1,
                                          "filtered": 0, "duplicates": 1, "pending": 0}},
               "quarantine_reasons": {"out_of_range": 1}, "derive": {"bmi_rows_written": 2}}
    markdown = summary_markdown(summary)
    assert "| Observation | 5 | 3 | 1 | 0 | 1 | 0 |" in markdown
    assert "| `out_of_range` | 1 |" in markdown and "| bmi_rows_written | 2 |" in markdown
    assert "vitalflow lineage trace derived.patient_bmi_latest" in markdown
    assert "No new records" in summary_markdown({**summary, "counts": {}})
    assert artifact_key("My_Profile") == "vitalflow-run-summary-my-profile"
