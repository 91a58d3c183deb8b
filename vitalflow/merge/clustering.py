"""Records to persons: constrained clustering of scored pairs, stable person ids, review list."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

Key = tuple[str, str]  # (source_system, source_id)

LINK_SCHEMA = pa.schema([
    pa.field("person_id", pa.string(), False),
    pa.field("source_system", pa.string(), False),
    pa.field("source_id", pa.string(), False),
    pa.field("match_probability", pa.float64()),  # of the record's strongest link in its person
    pa.field("match_weight", pa.float64()),
    pa.field("rule", pa.string(), False),  # manual | identifier | probabilistic | single
    pa.field("linked_at", pa.timestamp("us", tz="UTC"), False),  # since when in this person
])
OVERRIDE_SCHEMA = pa.schema([
    pa.field("source_system_a", pa.string(), False),
    pa.field("source_id_a", pa.string(), False),
    pa.field("source_system_b", pa.string(), False),
    pa.field("source_id_b", pa.string(), False),
    pa.field("decision", pa.string(), False),  # always | never
    pa.field("decided_at", pa.timestamp("us", tz="UTC"), False),
])
REVIEW_SCHEMA = pa.schema([
    pa.field("source_system_l", pa.string(), False),
    pa.field("source_id_l", pa.string(), False),
    pa.field("source_system_r", pa.string(), False),
    pa.field("source_id_r", pa.string(), False),
    pa.field("match_probability", pa.float64(), False),
    pa.field("match_weight", pa.float64()),
    pa.field("person_id_l", pa.string(), False),
    pa.field("person_id_r", pa.string(), False),
])
# Stronger evidence is applied first: a reviewer's decision, a shared identifier, then Splink.
_PRIORITY = {"manual": 0, "identifier": 1, "probabilistic": 2}


@dataclass
class Clustering:
    links: pa.Table  # LINK_SCHEMA, one row per source record
    review: pa.Table  # REVIEW_SCHEMA, probabilistic pairs left in two persons, undecided


def mint_person_id(key: Key) -> str:
    """A person id from its anchor record; the same record always gives the same id."""
    digest = hashlib.blake2b("\x1f".join(key).encode(), digest_size=10,
                             person=b"vitalflow-person").hexdigest()
    return f"P{digest}"


def pair_key(a: Key, b: Key) -> tuple[Key, Key]:
    return (a, b) if a < b else (b, a)


def overrides_by_pair(overrides: pa.Table | None) -> dict[tuple[Key, Key], str]:
    if overrides is None:
        return {}
    return {pair_key((r["source_system_a"], r["source_id_a"]),
                     (r["source_system_b"], r["source_id_b"])): r["decision"]
            for r in overrides.to_pylist()}


class _Components:
    """Union-find that refuses a union joining two records someone decided are different."""

    def __init__(self, size: int, never: set[tuple[int, int]]):
        self.parent = list(range(size))
        self.members = [[i] for i in range(size)]
        self.forbidden: list[set[int]] = [set() for _ in range(size)]
        for a, b in never:
            self.forbidden[a].add(b)
            self.forbidden[b].add(a)

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb or not self.forbidden[ra].isdisjoint(self.members[rb]):
            return
        if len(self.members[ra]) < len(self.members[rb]):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.members[ra] += self.members[rb]
        self.forbidden[ra] |= self.forbidden[rb]
        self.members[rb], self.forbidden[rb] = [], set()


def cluster(identities: pa.Table, pairs: pa.Table, *, match_probability: float,
            now: datetime, overrides: pa.Table | None = None,
            previous: pa.Table | None = None) -> Clustering:
    """Persons from scored pairs (matching.PAIR_SCHEMA).

    Edges are applied strongest first (manual `always` overrides, identifier pairs, then
    probabilistic pairs at or above `match_probability` by falling probability); an edge that
    would put two records with a `never` override into one person is skipped. A person's id is
    minted from its anchor, the record seen first (column `first_seen` of `identities` when
    present; ties and absent times go to the smallest record): a record joining later never
    changes the id, and a split gives each part the id it had before the merge. `linked_at`
    (from `previous` links) stays as it was while a record's person does.
    """
    keys = sorted(zip(identities.column("source_system").to_pylist(),
                      identities.column("source_id").to_pylist(), strict=True))
    index = {key: i for i, key in enumerate(keys)}
    decisions = {pair: d for pair, d in overrides_by_pair(overrides).items()
                 if pair[0] in index and pair[1] in index}
    edges = _edges(pairs, decisions, index, match_probability)
    components = _Components(len(keys), {(index[a], index[b]) for (a, b), d in decisions.items()
                                         if d == "never"})
    for _, _, a, b, _, _, _ in edges:
        components.union(a, b)
    roots = [components.find(i) for i in range(len(keys))]

    strongest: dict[int, tuple] = {}
    for priority, neg_probability, a, b, rule, probability, weight in edges:
        if roots[a] == roots[b]:
            for i in (a, b):
                strongest.setdefault(i, (rule, probability, weight))  # edges come strongest first

    person_of_root = _person_ids(identities, keys, roots, components)
    before = _previous(previous)
    rows = []
    for i, key in enumerate(keys):
        person_id = person_of_root[roots[i]]
        rule, probability, weight = strongest.get(i, ("single", None, None))
        old = before.get(key)
        rows.append({"person_id": person_id, "source_system": key[0], "source_id": key[1],
                     "match_probability": probability, "match_weight": weight, "rule": rule,
                     "linked_at": old[1] if old and old[0] == person_id else now})
    links = pa.Table.from_pylist(rows, schema=LINK_SCHEMA)
    return Clustering(links, _review(pairs, decisions, index, roots, person_of_root))


def _edges(pairs: pa.Table, decisions: dict, index: dict[Key, int],
           match_probability: float) -> list[tuple]:
    edges = [(0, -1.0, index[a], index[b], "manual", 1.0, None)
             for (a, b), decision in decisions.items() if decision == "always"]
    for row in pairs.to_pylist():
        a = (row["source_system_l"], row["source_id_l"])
        b = (row["source_system_r"], row["source_id_r"])
        probability = row["match_probability"]
        if a in index and b in index and (row["rule"] != "probabilistic"
                                          or probability >= match_probability):
            edges.append((_PRIORITY[row["rule"]], -probability, index[a], index[b], row["rule"],
                          probability, row["match_weight"]))
    edges.sort(key=lambda edge: edge[:4])
    return edges


def _previous(previous: pa.Table | None) -> dict[Key, tuple[str, datetime]]:
    if previous is None:
        return {}
    return {(r["source_system"], r["source_id"]): (r["person_id"], r["linked_at"])
            for r in previous.to_pylist()}


def _person_ids(identities: pa.Table, keys: list[Key], roots: list[int],
                components: _Components) -> dict[int, str]:
    seen: dict[Key, float] = {}
    if "first_seen" in identities.column_names:
        for system, source_id, stamp in zip(*(identities.column(name).to_pylist() for name in (
                "source_system", "source_id", "first_seen")), strict=True):
            seen[(system, source_id)] = stamp.timestamp() if stamp else float("-inf")
    return {root: mint_person_id(min((keys[i] for i in components.members[root]),
                                     key=lambda k: (seen.get(k, float("-inf")), k)))
            for root in set(roots)}


def _review(pairs: pa.Table, decisions: dict, index: dict[Key, int], roots: list[int],
            person_of_root: dict[int, str]) -> pa.Table:
    rows = []
    for row in pairs.to_pylist():
        a = (row["source_system_l"], row["source_id_l"])
        b = (row["source_system_r"], row["source_id_r"])
        if (row["rule"] == "probabilistic" and a in index and b in index
                and roots[index[a]] != roots[index[b]] and (a, b) not in decisions):
            rows.append({**{k: row[k] for k in REVIEW_SCHEMA.names if k in row},
                         "person_id_l": person_of_root[roots[index[a]]],
                         "person_id_r": person_of_root[roots[index[b]]]})
    rows.sort(key=lambda r: (-r["match_probability"], r["source_system_l"], r["source_id_l"],
                             r["source_system_r"], r["source_id_r"]))
    return pa.Table.from_pylist(rows, schema=REVIEW_SCHEMA)


def unmerge_groups(links: pa.Table, *, person_id: str | None = None,
                   record: Key | None = None) -> list[list[Key]]:
    """How to split a person: with `record`, that record apart from the rest of its person;
    with `person_id`, the records that joined it last (latest linked_at) apart from the
    others, or, when all joined together, every record on its own. Raises ValueError when
    there is nothing to split."""
    rows = links.to_pylist()
    if record is not None:
        mine = next((r["person_id"] for r in rows
                     if (r["source_system"], r["source_id"]) == record), None)
        if mine is None:
            raise ValueError("no such source record in the link table")
        person_id = mine
    members = [r for r in rows if r["person_id"] == person_id]
    if len(members) < 2:
        raise ValueError("the person has fewer than two records: nothing to unmerge")
    keys = sorted((r["source_system"], r["source_id"]) for r in members)
    if record is not None:
        return [[record], [k for k in keys if k != record]]
    latest = max(r["linked_at"] for r in members)
    newest = sorted((r["source_system"], r["source_id"]) for r in members
                    if r["linked_at"] == latest)
    if len(newest) == len(keys):
        return [[k] for k in keys]
    return [newest, [k for k in keys if k not in newest]]


def never_overrides(groups: list[list[Key]], now: datetime) -> pa.Table:
    """`never` decisions between every two records of different groups."""
    return decisions([(a, b) for g, group in enumerate(groups) for other in groups[g + 1:]
                      for a in group for b in other], "never", now)


def decisions(pairs: list[tuple[Key, Key]], decision: str, now: datetime) -> pa.Table:
    """Override rows (OVERRIDE_SCHEMA) for these record pairs."""
    if decision not in ("always", "never"):
        raise ValueError("decision must be 'always' or 'never'")
    rows = []
    for a, b in pairs:
        if a == b:
            raise ValueError("a record cannot be paired with itself")
        low, high = pair_key(a, b)
        rows.append({"source_system_a": low[0], "source_id_a": low[1],
                     "source_system_b": high[0], "source_id_b": high[1],
                     "decision": decision, "decided_at": now})
    return pa.Table.from_pylist(rows, schema=OVERRIDE_SCHEMA)
