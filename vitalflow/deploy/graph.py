"""The ownership graph as data: which stage reads and writes which table, which flow runs which
stages, and the checks a deployment set must pass (no cycle of triggers, one writer per table)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vitalflow.tables import DERIVED_TABLES, RAW_TABLES, REFINED_TABLES, Table

INPUT_FILES = "input.files"  # what the ingest stage reads: files outside every table
FILE_LANDED = "vitalflow.file.landed"
TABLE_UPDATED = "vitalflow.table.updated"
FLOW_RUN_EVENT = "prefect.flow-run."  # prefix of Prefect's own flow-run state events


def table_resource(qualified_name: str) -> str:
    """The resource id a `vitalflow.table.updated` event names."""
    return f"vitalflow.table.{qualified_name}"


@dataclass(frozen=True)
class Stage:
    """One unit of work with the tables (or INPUT_FILES) it reads and the tables it writes."""

    name: str
    reads: frozenset[str]
    writes: frozenset[str]


@dataclass(frozen=True)
class Flow:
    """A Prefect flow: its name in Prefect, its entrypoint and the stages it may run."""

    name: str
    entrypoint: str
    stages: tuple[str, ...]


def stages_from_tables(tables: Iterable[Table] = RAW_TABLES + REFINED_TABLES + DERIVED_TABLES
                       ) -> dict[str, Stage]:
    """A stage per table owner: it writes the tables it owns and reads the tables their columns
    come from (`upstream`); a stage whose tables come from nothing reads the input files."""
    tables = tuple(tables)
    writes: dict[str, set[str]] = {}
    reads: dict[str, set[str]] = {}
    for table in tables:
        writes.setdefault(table.owner, set()).add(table.qualified_name)
        sources = reads.setdefault(table.owner, set())
        for column in table.columns:
            sources.update(".".join(u.split(".")[:2]) for u in column.upstream)
    stages = {}
    for owner, written in writes.items():
        read = reads[owner] - written or {INPUT_FILES}
        stages[owner] = Stage(owner, frozenset(read), frozenset(written))
    return stages


STAGES = stages_from_tables()
_INGEST, _REFINE = "ingest", "refine"
_DERIVE = tuple(t.owner for t in DERIVED_TABLES)
# Every flow a deployment may run. Operations that write no table row (maintenance rewrites
# raw files in place, drills and benchmarks use storage of their own) run no stage.
FLOWS = (
    Flow("vitalflow-pipeline", "flows/pipeline.py:vitalflow_pipeline",
         (_INGEST, _REFINE, *_DERIVE)),
    *(Flow(owner, f"flows/pipeline.py:{owner}_flow", (owner,)) for owner in _DERIVE),
    Flow("vitalflow-rebuild", "flows/operations.py:rebuild_flow", (_REFINE, *_DERIVE)),
    Flow("vitalflow-raw-maintenance", "flows/operations.py:raw_maintenance_flow", ()),
    Flow("vitalflow-drill", "flows/operations.py:drill_flow", ()),
    Flow("vitalflow-bench", "flows/operations.py:bench_flow", ()),
)


class DeploymentError(ValueError):
    """A deployment set the ownership graph refuses; every problem is in `problems`."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Deployment:
    """What the checks need of a prefect.yaml deployment."""

    name: str
    flow: Flow
    triggers: tuple[Mapping, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.flow.name}/{self.name}"


@dataclass
class Graph:
    stages: dict[str, Stage] = field(default_factory=lambda: dict(STAGES))
    flows: tuple[Flow, ...] = FLOWS

    def flow_at(self, entrypoint: str) -> Flow | None:
        return next((f for f in self.flows if f.entrypoint == entrypoint), None)

    def writes(self, flow: Flow) -> set[str]:
        return {t for s in flow.stages for t in self.stages[s].writes}

    def writers(self) -> dict[str, list[str]]:
        """Table -> the stages that write it."""
        found: dict[str, list[str]] = {}
        for stage in self.stages.values():
            for table in stage.writes:
                found.setdefault(table, []).append(stage.name)
        return found

    def deployments(self, prefect_yaml: Mapping) -> list[Deployment]:
        """The deployments of a parsed prefect.yaml; an entrypoint no flow has is refused."""
        found, unknown = [], []
        for entry in prefect_yaml.get("deployments") or []:
            flow = self.flow_at(entry.get("entrypoint", ""))
            if flow is None:
                unknown.append(f"deployment {entry.get('name')!r}: entrypoint "
                               f"{entry.get('entrypoint')!r} is not a flow of the ownership "
                               "graph (declare it in vitalflow/deploy/graph.py FLOWS)")
                continue
            found.append(Deployment(entry["name"], flow, tuple(entry.get("triggers") or ())))
        if unknown:
            raise DeploymentError(unknown)
        return found

    def edges(self, deployments: list[Deployment]) -> dict[str, set[str]]:
        """Deployment -> the deployments its runs can start (through their triggers)."""
        edges: dict[str, set[str]] = {d.label: set() for d in deployments}
        for target in deployments:
            for trigger in target.triggers:
                for source in deployments:
                    if self._starts(source, trigger):
                        edges[source.label].add(target.label)
        return edges

    def _starts(self, source: Deployment, trigger: Mapping) -> bool:
        """Whether an event a run of source emits matches the trigger."""
        expect = _as_list(trigger.get("expect")) or ["*"]
        ids = _as_list((trigger.get("match") or {}).get("prefect.resource.id")) or ["*"]
        emitted = []
        if any(fnmatch.fnmatch(TABLE_UPDATED, e) for e in expect):
            emitted += [table_resource(t) for t in self.writes(source.flow)]
        if any(e.startswith(FLOW_RUN_EVENT) or e == "*" for e in expect):
            names = _as_list((trigger.get("match_related") or {}).get("prefect.resource.name"))
            if source.flow.name in names:
                emitted.append("prefect.flow-run.*")
        return any(fnmatch.fnmatch(r, i) or fnmatch.fnmatch(i, r) for r in emitted for i in ids)

    def check(self, deployments: list[Deployment]) -> None:
        """Refuse two writers of one table and any cycle of triggers, naming them."""
        problems = [f"table {table} has {len(stages)} writers: {', '.join(sorted(stages))}"
                    for table, stages in sorted(self.writers().items()) if len(stages) > 1]
        unknown = sorted({s for f in self.flows for s in f.stages} - set(self.stages))
        problems += [f"flow stage {s!r} is not in the ownership graph" for s in unknown]
        if not unknown:
            cycle = find_cycle(self.edges(deployments))
            if cycle:
                problems.append("trigger cycle: " + " -> ".join(cycle))
        if problems:
            raise DeploymentError(problems)


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the directed graph, as the path that closes it (first node repeated)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
