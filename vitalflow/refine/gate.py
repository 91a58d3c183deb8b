"""What reaches refined: the whitelist filters standardised rows, records are linked to persons,
then patients get pseudonyms."""

from __future__ import annotations

from dataclasses import replace

import psycopg
import pyarrow as pa

from vitalflow.config import Settings
from vitalflow.refine.persons import link_persons, person_of_records, with_persons
from vitalflow.privacy.identity import record_identities, register_key
from vitalflow.privacy.keys import load_key
from vitalflow.privacy.pseudonym import IDENTITY_SCHEMA, Pseudonymiser
from vitalflow.ingest import Batch
from vitalflow.refine.standardise import StandardisedBatch, Standardiser, standardiser_options
from vitalflow.refine.terminology_step import TerminologyStage, with_added
from vitalflow.tables import OBSERVATION, PATIENT
from vitalflow.refine.whitelist import Context, load_whitelist

WHITELIST_REASON = "whitelist:{rule}"


class RefineGate:
    """One per refine run, in the process that merges: cheap set work per chunk."""

    def __init__(self, settings: Settings, control_url: str) -> None:
        self.settings = settings
        self.control_url = control_url
        self.terminology: TerminologyStage | None = None
        self.person_of: dict[str, str] | None = None
        self.whitelist = None
        self.context = Context(source_system=settings.privacy.source_system)
        self.pseudonymiser: Pseudonymiser | None = None
        self.identities: list[pa.Table] = []
        self.parked: list[str] = []  # observations waiting for the terminology server

    def open(self, control: psycopg.Connection, raw=None, pending: list[Batch] = (),
             link: bool = True) -> None:
        """Load the rules and key, link this run's patient records to persons (link=False: a
        partition, whose planner linked them once for all partitions)."""
        settings = self.settings
        if settings.terminology.enabled:
            self.terminology = TerminologyStage(settings.terminology, self.control_url,
                                                Standardiser(*standardiser_options(settings)))
        if settings.merge.enabled:
            self.person_of = (link_persons(control, settings, raw, list(pending)) if link
                              else person_of_records(control))
        if settings.filter.enabled:
            self.whitelist = load_whitelist(settings.filter.path)
        if settings.privacy.enabled:
            self.key = load_key(settings.privacy, settings.paths.root)
            register_key(control, self.key)
            self.pseudonymiser = Pseudonymiser(self.key, settings.privacy)

    def apply(self, out: StandardisedBatch, records: pa.RecordBatch) -> StandardisedBatch:
        out = self.terminology.apply(out, records) if self.terminology else with_added(out)
        self.parked += out.parked
        filtered = out.filtered.copy()
        tables = {}
        for name, resource_type, description in (("patients", "Patient", PATIENT),
                                                 ("observations", "Observation", OBSERVATION)):
            rows = getattr(out, name)
            if name == "patients":
                rows = with_persons(rows, self.person_of)
            if self.whitelist and rows.num_rows:
                result = self.whitelist.apply(rows, resource_type, self.context)
                rows = result.kept
                for rule, count in result.filtered.items():
                    filtered[(resource_type, WHITELIST_REASON.format(rule=rule))] += count
            if self.pseudonymiser:
                batch = self.pseudonymiser.apply(rows, description)
                rows = batch.table
                if batch.identities.num_rows:
                    self.identities.append(batch.identities)
            tables[name] = rows
        return replace(out, filtered=filtered, **tables)

    def close(self) -> dict:
        """Release the terminology client; returns its summary for the run."""
        if not self.terminology:
            return {}
        self.terminology.close()
        return self.terminology.summary()

    def record(self, control: psycopg.Connection) -> None:
        """Pseudonym -> source identity rows into the restricted identity schema."""
        if self.pseudonymiser and self.identities:
            record_identities(control, pa.concat_tables(self.identities).cast(IDENTITY_SCHEMA),
                              self.key)
            self.identities = []
