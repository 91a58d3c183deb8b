"""Refine's terminology step: codes checked against a FHIR terminology server, feeder codes
translated to LOINC, one call per distinct value (cached in process and in the database)."""

from __future__ import annotations

import functools
from collections import Counter

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from vitalflow.catalog import LOINC
from vitalflow.reasons import Quarantine
from vitalflow.refine.standardise import QUARANTINE_STAGE, StandardisedBatch, Standardiser
from vitalflow.terminology.cache import PersistentCache
from vitalflow.terminology.check import OUTCOMES, check_codings
from vitalflow.terminology.client import TerminologyClient
from vitalflow.terminology.settings import TerminologySettings

# Columns the terminology step adds to each observation row.
ADDED = pa.schema([("code_system_version", pa.string()), ("mapping_equivalence", pa.string()),
                   ("source_coding", pa.string())])


@functools.cache
def local_server_url() -> str:
    """The local terminology server (config/terminology/), once per process, over HTTP."""
    from vitalflow.terminology.embedded import EmbeddedServer

    return EmbeddedServer().start()


class TerminologyStage:
    """One per refine run, in the merging process."""

    def __init__(self, settings: TerminologySettings, control_url: str,
                 standardiser: Standardiser) -> None:
        base_url = settings.base_url or local_server_url()
        self.client = TerminologyClient(base_url, settings, cache=PersistentCache(
            control_url, settings.cache_ttl_hours))
        self.settings = settings
        self.standardiser = standardiser
        self.verdicts: dict[tuple, dict] = {}  # (system, code, unit) -> check_codings row
        self.translations: dict[tuple, dict] = {}  # feeder (system, code) -> check_codings row
        self.counts: Counter = Counter(dict.fromkeys(OUTCOMES, 0))  # records per outcome

    def close(self) -> None:
        self.client.close()

    def apply(self, out: StandardisedBatch, records: pa.RecordBatch) -> StandardisedBatch:
        """Translate feeder-coded observations, keep valid codes, quarantine rejected ones with
        the server's message, and park those the server could not check now (out.parked):
        they are retried by the next run, never dropped and never passed unchecked."""
        out, translated = self._translate(out, records)
        observations = out.observations
        if not observations.num_rows:
            return with_added(out)
        verdict = self._verdicts(observations)
        outcome = pc.take(pa.array([v["outcome"] for v in verdict["rows"]]), verdict["index"])
        keep = pc.is_in(outcome, pa.array(["valid", "mapped"]))
        wait = pc.equal(outcome, "pending")
        reject = pc.invert(pc.or_(keep, wait))
        kept = observations.filter(keep).append_column(
            "code_system_version", pc.take(pa.array(
                [v["code_system_version"] for v in verdict["rows"]], pa.string()),
                pc.filter(verdict["index"], keep)))
        parked = observations.filter(wait).column("raw_record_id").to_pylist()
        rejected = observations.filter(reject)
        self.counts["valid"] += kept.num_rows - sum(i in translated for i in kept.column(
            "raw_record_id").to_pylist())
        self.counts["invalid"] += rejected.num_rows
        self.counts["pending"] += len(parked)
        messages = pc.take(pa.array([v["message"] for v in verdict["rows"]], pa.string()),
                           pc.filter(verdict["index"], reject))
        quarantine = pa.concat_tables([out.quarantine, _quarantined(rejected, messages)],
                                      promote_options="permissive")
        return StandardisedBatch(out.patients, _translated_columns(kept, translated),
                                 quarantine, out.read, out.filtered, out.parked + parked)

    def summary(self) -> dict:
        return {"records": dict(self.counts), "calls": dict(self.client.stats),
                "breaker": self.client.breaker.state}

    def _verdicts(self, observations: pa.Table) -> dict:
        """Per distinct (system, code, unit) the server's verdict; per row its index."""
        keys = pa.table({"system": observations.column("code_system"),
                         "code": observations.column("code"),
                         "unit": observations.column("unit")})
        distinct = keys.group_by(["system", "code", "unit"]).aggregate([])
        unknown = [k for k in zip(*(distinct.column(c).to_pylist() for c in distinct.column_names))
                   if k not in self.verdicts]
        if unknown:
            checked = check_codings(pa.table(list(zip(*unknown, strict=True)),
                                             names=["system", "code", "unit"]),
                                    self.client, self.settings)
            for row in checked.to_pylist():
                self.verdicts[(row["system"], row["code"], row["unit"])] = row
        # Few distinct keys, many rows: each row finds its verdict by a vectorised lookup.
        order = list(self.verdicts)
        index = pc.index_in(_joined(*(keys.column(c) for c in ("system", "code", "unit"))),
                            value_set=_joined(*(pa.array(part, pa.string())
                                                for part in zip(*order, strict=True))))
        return {"rows": [self.verdicts[k] for k in order], "index": index}

    def _translate(self, out: StandardisedBatch, records: pa.RecordBatch
                   ) -> tuple[StandardisedBatch, dict[str, tuple[str, str]]]:
        """Observations quarantined for want of a LOINC coding are standardised again when a
        ConceptMap translates one of their codings, and parked when the server could not say.
        Also returns raw_record_id -> (equivalence, source system|code) of translated ones."""
        unknown = pc.equal(out.quarantine.column("reason"), str(Quarantine.UNKNOWN_CODE_SYSTEM))
        if not pc.any(unknown).as_py():
            return out, {}
        ids = out.quarantine.filter(unknown).column("raw_record_id")
        retry = records.filter(pc.is_in(records.column("raw_record_id"), ids))
        codings = {rid: _codings(text) for rid, text in zip(
            retry.column("raw_record_id").to_pylist(), retry.column("raw_json").to_pylist(),
            strict=True)}
        mapped, unsure = self._mappings(sorted({c for found in codings.values() for c in found}))
        parked = [rid for rid, found in codings.items()
                  if not any(c in mapped for c in found) and any(c in unsure for c in found)]
        if not mapped and not parked:
            return out, {}
        again = self.standardiser.translating({k: v[0] for k, v in mapped.items()}).run(
            retry.filter(pc.invert(pc.is_in(retry.column("raw_record_id"),
                                            pa.array(parked, pa.string())))), None)
        translated = {}
        for rid in again.observations.column("raw_record_id").to_pylist():
            coding = next(c for c in codings[rid] if c in mapped)
            translated[rid] = (mapped[coding][1], f"{coding[0]}|{coding[1]}")
        self.counts["mapped"] += len(translated)
        self.counts["pending"] += len(parked)
        retried = pc.is_in(out.quarantine.column("raw_record_id"), ids)
        return StandardisedBatch(
            out.patients, pa.concat_tables([out.observations, again.observations]),
            pa.concat_tables([out.quarantine.filter(pc.invert(retried)), again.quarantine]),
            out.read, out.filtered + again.filtered, out.parked + parked), translated

    def _mappings(self, codings: list[tuple[str, str]]
                  ) -> tuple[dict[tuple, tuple[str, str]], set[tuple[str, str]]]:
        """(system, code) -> (LOINC code, equivalence) for codings a ConceptMap translates, and
        the codings the server could not translate now."""
        unknown = [c for c in codings if c not in self.translations]
        if unknown:
            checked = check_codings(pa.table(list(zip(*unknown, strict=True)),
                                             names=["system", "code"]), self.client,
                                    self.settings)
            for row in checked.to_pylist():
                self.translations[(row["system"], row["code"])] = row
        found, unsure = {}, set()
        for system, code in codings:
            row = self.translations[(system, code)]
            if row["outcome"] == "mapped" and row["target_system"] == LOINC:
                found[(system, code)] = (row["target_code"], row["equivalence"])
            elif row["outcome"] == "pending":
                unsure.add((system, code))
        return found, unsure


def _codings(text: str | None) -> list[tuple[str, str]]:
    try:
        resource = orjson.loads(text or "")
        codings = resource["code"]["coding"]
        return [(c["system"], c["code"]) for c in codings
                if isinstance(c, dict) and isinstance(c.get("system"), str)
                and isinstance(c.get("code"), str) and c["system"] != LOINC]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return []


def _joined(system, code, unit) -> pa.Array:
    return pc.binary_join_element_wise(system, code, pc.fill_null(unit, ""), "\x1f")


def _translated_columns(kept: pa.Table, translated: dict[str, tuple[str, str]]) -> pa.Table:
    if not translated:
        return kept.append_column("mapping_equivalence", pa.nulls(kept.num_rows, pa.string())
                                  ).append_column("source_coding",
                                                  pa.nulls(kept.num_rows, pa.string()))
    ids = kept.column("raw_record_id").to_pylist()
    return kept.append_column("mapping_equivalence", pa.array(
        [translated[i][0] if i in translated else None for i in ids], pa.string())
    ).append_column("source_coding", pa.array(
        [translated[i][1] if i in translated else None for i in ids], pa.string()))


def with_added(out: StandardisedBatch) -> StandardisedBatch:
    """out with the terminology columns empty (terminology checks switched off)."""
    observations = out.observations
    for field in ADDED:
        observations = observations.append_column(field, pa.nulls(observations.num_rows,
                                                                   field.type))
    return StandardisedBatch(out.patients, observations, out.quarantine, out.read, out.filtered)


def _quarantined(rows: pa.Table, messages: pa.Array) -> pa.Table:
    """Quarantine rows for rejected observations; few, so plain lists."""
    ids = rows.column("raw_record_id").to_pylist()
    return pa.table({
        "raw_record_id": ids,
        "batch_id": [i.rsplit("-", 1)[0] for i in ids],
        "resource_type": ["Observation"] * len(ids),
        "resource_id": rows.column("observation_id").to_pylist(),
        "reason": [str(Quarantine.TERMINOLOGY_REJECTED)] * len(ids),
        "detail": [(m or "rejected by the terminology server")[:500]
                   for m in messages.to_pylist()],
    }, schema=pa.schema([(c.name, c.arrow_type) for c in QUARANTINE_STAGE]))
