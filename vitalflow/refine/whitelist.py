"""Whitelist filter: declarative YAML rules a standardised record must all meet to reach refined."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vitalflow.tables import OBSERVATION, PATIENT, Table

# The standardised tables a rule can look at, by FHIR resource type.
RESOURCES: dict[str, Table] = {"Patient": PATIENT, "Observation": OBSERVATION}
# Fields that are not columns: the record's type, the chunk's source system, the patient's age
# (today for a Patient, at effective_at for an Observation).
VIRTUAL_FIELDS = {"resource_type": "text", "source_system": "text", "age_years": "float"}
_ORDERED_TYPES = {"int", "float", "date", "timestamp"}
_NAME = re.compile(r"[a-z][a-z0-9_]*")


class WhitelistError(ValueError):
    """The rules file is unreadable or a rule is invalid; the message names file and rule."""


class ValueSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: str | None = None  # when set, a record's code_system must equal it too
    codes: list[str] = Field(min_length=1)


class Rule(BaseModel):
    """One criterion: `field` must be `in` a list or ValueSet, or lie within [min, max]."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    description: str = ""
    resource: list[str] | None = None  # None: every resource type
    field: str
    in_: list[Any] | None = Field(None, alias="in", min_length=1)
    in_valueset: str | None = None
    min: Any = None
    max: Any = None
    missing: Literal["fail", "pass"] = "fail"  # a record without the field fails by default

    @field_validator("name")
    @classmethod
    def _snake_case(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError("name must be snake_case (a-z, 0-9, _), e.g. observation_status")
        return name

    @field_validator("resource", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valuesets: dict[str, ValueSet] = {}
    rules: list[dict] = Field(min_length=1)  # validated one by one, to name the failing rule


@dataclass(frozen=True)
class Context:
    """What a rule may need beyond the table: the chunk's source system, patients' birth dates
    (patient_key, birth_date; same keys as the table filtered), and today for Patient ages."""

    source_system: str | None = None
    birth_dates: pa.Table | None = None
    today: date | None = None


@dataclass
class WhitelistResult:
    """Rows that passed, and per rule the rows it filtered (each row under its first failure)."""

    kept: pa.Table
    filtered: Counter

    @property
    def read(self) -> int:
        return self.kept.num_rows + sum(self.filtered.values())


@dataclass(frozen=True)
class _Criterion:
    rule: Rule
    kind: str  # the logical type of the field (tables.TYPES names)
    values: frozenset | None
    system: str | None
    low: Any
    high: Any
    high_exclusive: bool  # a date-only max on a timestamp means "before the next day"


class Whitelist:
    """Loaded, validated rules; apply() filters one standardised table."""

    def __init__(self, criteria: list[_Criterion], source: str) -> None:
        self.criteria = criteria
        self.source = source

    @property
    def rule_names(self) -> list[str]:
        return [c.rule.name for c in self.criteria]

    def rules_for(self, resource_type: str) -> list[Rule]:
        return [c.rule for c in self.criteria if _applies(c.rule, resource_type)]

    def apply(self, table: pa.Table, resource_type: str,
              context: Context | None = None) -> WhitelistResult:
        context = context or Context()
        keep = pa.array([True] * table.num_rows, pa.bool_())
        filtered: Counter = Counter()
        for criterion in self.criteria:
            if not _applies(criterion.rule, resource_type):
                continue
            meets = _evaluate(criterion, table, resource_type, context)
            newly_failed = pc.sum(pc.and_kleene(keep, pc.invert(meets))).as_py() or 0
            if newly_failed:
                filtered[criterion.rule.name] += newly_failed
                keep = pc.and_kleene(keep, meets)
        return WhitelistResult(table.filter(keep), filtered)


def load_whitelist(path: Path) -> Whitelist:
    """Read and validate a rules file; every problem names the file and the rule."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise WhitelistError(f"{path}: cannot read the whitelist rules ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise WhitelistError(f"{path}: not valid YAML ({_one_line(exc)})") from None
    return parse_whitelist(document, str(path))


def parse_whitelist(document: object, source: str = "<rules>") -> Whitelist:
    if not isinstance(document, dict):
        raise WhitelistError(f"{source}: expected a mapping with 'rules' (and 'valuesets')")
    try:
        parsed = RulesFile.model_validate(document)
    except ValidationError as exc:
        raise WhitelistError(f"{source}: {_pydantic_message(exc)}") from None
    criteria: list[_Criterion] = []
    for index, raw in enumerate(parsed.rules, start=1):
        label = f"rule {raw.get('name')!r}" if isinstance(raw, dict) and raw.get("name") \
            else f"rule #{index}"
        try:
            rule = Rule.model_validate(raw)
            if rule.name in {c.rule.name for c in criteria}:
                raise ValueError("a rule of this name comes earlier; names must be unique")
            criteria.append(_compile(rule, parsed.valuesets))
        except ValidationError as exc:
            raise WhitelistError(f"{source}: {label}: {_pydantic_message(exc)}") from None
        except ValueError as exc:
            raise WhitelistError(f"{source}: {label}: {exc}") from None
    return Whitelist(criteria, source)


def _compile(rule: Rule, valuesets: dict[str, ValueSet]) -> _Criterion:
    resources = rule.resource or list(RESOURCES)
    unknown = [r for r in resources if r not in RESOURCES]
    if unknown:
        raise ValueError(f"resource {unknown[0]!r} is not refined; known: {sorted(RESOURCES)}")
    kinds = {_field_kind(rule.field, r) for r in resources}
    if None in kinds:
        lacking = [r for r in resources if _field_kind(rule.field, r) is None]
        fields = sorted(set(RESOURCES[lacking[0]].column_names) | set(VIRTUAL_FIELDS))
        raise ValueError(f"field {rule.field!r} does not exist on {lacking[0]} "
                         f"(name the resource with 'resource:'); fields: {', '.join(fields)}")
    if len(kinds) > 1:
        raise ValueError(f"field {rule.field!r} has different types on {resources}: "
                         "give one resource")
    kind = kinds.pop()
    ranged = rule.min is not None or rule.max is not None
    forms = sum((rule.in_ is not None, rule.in_valueset is not None, ranged))
    if forms != 1:
        raise ValueError("give exactly one of 'in', 'in_valueset', or 'min'/'max'")
    values = system = low = high = None
    high_exclusive = False
    if rule.in_ is not None:
        if kind != "text":
            raise ValueError(f"'in' needs a text field; {rule.field!r} is {kind}: use min/max")
        values = frozenset(str(v) for v in rule.in_)
    elif rule.in_valueset is not None:
        if rule.field != "code":
            raise ValueError("'in_valueset' applies to the field 'code'")
        if rule.in_valueset not in valuesets:
            raise ValueError(f"valueset {rule.in_valueset!r} is not defined under 'valuesets'; "
                             f"defined: {sorted(valuesets) or 'none'}")
        valueset = valuesets[rule.in_valueset]
        values, system = frozenset(valueset.codes), valueset.system
    else:
        if kind not in _ORDERED_TYPES:
            raise ValueError(f"'min'/'max' need a number, date or timestamp field; "
                             f"{rule.field!r} is {kind}")
        low = _bound(rule.min, kind, "min")
        high = _bound(rule.max, kind, "max")
        high_exclusive = kind == "timestamp" and _is_date_only(rule.max)
        if high_exclusive:
            high = high + timedelta(days=1)
        if low is not None and high is not None and low > high:
            raise ValueError(f"min {rule.min!r} is greater than max {rule.max!r}")
    return _Criterion(rule, kind, values, system, low, high, high_exclusive)


def _field_kind(field: str, resource: str) -> str | None:
    if field in VIRTUAL_FIELDS:
        return VIRTUAL_FIELDS[field]
    table = RESOURCES[resource]
    return table.column(field).type if field in table.column_names else None


def _is_date_only(value: object) -> bool:
    return (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and len(value.strip()) == 10)


def _bound(value: object, kind: str, what: str) -> Any:
    if value is None:
        return None
    try:
        if kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError
            return float(value)
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        else:
            moment = datetime.fromisoformat(str(value))
        if kind == "date":
            return moment.date()
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, TypeError):
        expected = "a number" if kind in ("int", "float") else "an ISO date (YYYY-MM-DD)"
        raise ValueError(f"{what} {value!r} is not {expected}") from None


def _applies(rule: Rule, resource_type: str) -> bool:
    return rule.resource is None or resource_type in rule.resource


def _evaluate(criterion: _Criterion, table: pa.Table, resource_type: str,
              context: Context) -> pa.Array:
    """True where the row meets the criterion; a missing value counts as the rule says."""
    rule = criterion.rule
    values = _field_values(rule.field, table, resource_type, context)
    if criterion.values is not None:
        meets = pc.is_in(values, value_set=pa.array(sorted(criterion.values), pa.string()))
        if criterion.system is not None and "code_system" in table.column_names:
            meets = pc.and_(meets, pc.equal(table.column("code_system"), criterion.system))
        meets = pc.if_else(pc.is_null(values), pa.scalar(None, pa.bool_()), meets)
    else:
        if criterion.kind in ("int", "float"):
            values = pc.cast(values, pa.float64())
        meets = pa.array([True] * table.num_rows, pa.bool_())
        if criterion.low is not None:
            low = pa.scalar(criterion.low, values.type)
            meets = pc.and_kleene(meets, pc.greater_equal(values, low))
        if criterion.high is not None:
            compare = pc.less if criterion.high_exclusive else pc.less_equal
            meets = pc.and_kleene(meets, compare(values, pa.scalar(criterion.high, values.type)))
    return pc.fill_null(meets, rule.missing == "pass")


def _field_values(field: str, table: pa.Table, resource_type: str,
                  context: Context) -> pa.Array | pa.ChunkedArray:
    n = table.num_rows
    if field == "resource_type":
        return pa.array([resource_type] * n, pa.string())
    if field == "source_system":
        return pa.array([context.source_system] * n, pa.string())
    if field == "age_years":
        return _age_years(table, resource_type, context)
    return table.column(field)


def _age_years(table: pa.Table, resource_type: str, context: Context) -> pa.Array:
    """Completed years of age, null when the birth date is not known."""
    n = table.num_rows
    if resource_type == "Patient":
        births = table.column("birth_date")
        today = context.today or date.today()
        at = pa.array([today] * n, pa.date32())
    else:
        if context.birth_dates is None:
            return pa.nulls(n, pa.float64())
        lookup = context.birth_dates
        index = pc.index_in(table.column("patient_key"), value_set=lookup.column("patient_key"))
        births = pc.take(lookup.column("birth_date"), index)
        at = pc.cast(table.column("effective_at"), pa.date32())
    years = pc.subtract(pc.year(at), pc.year(births))
    before_birthday = pc.or_(
        pc.less(pc.month(at), pc.month(births)),
        pc.and_(pc.equal(pc.month(at), pc.month(births)), pc.less(pc.day(at), pc.day(births))))
    return pc.cast(pc.subtract(years, pc.cast(before_birthday, pa.int64())), pa.float64())


def _pydantic_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
