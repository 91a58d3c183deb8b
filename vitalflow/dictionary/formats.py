"""Machine-readable forms: Frictionless Data Package, JSON Schema per table, OpenMetadata JSON."""

from __future__ import annotations

import uuid
from typing import Any

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://vitalflow/dictionary")
# The layers an analyst reads: the data package and JSON Schemas describe these.
ANALYST_LAYERS = ("refined", "derived")
_FRICTIONLESS = {"text": "string", "int": "integer", "float": "number", "bool": "boolean",
                 "date": "date", "timestamp": "datetime", "json": "object", "decimal": "number",
                 "binary": "string"}
_JSON = {"text": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"},
         "bool": {"type": "boolean"}, "date": {"type": "string", "format": "date"},
         "timestamp": {"type": "string", "format": "date-time"}, "json": {},
         "decimal": {"type": "number"}, "binary": {"type": "string",
                                                   "contentEncoding": "base64"}}
_OPENMETADATA = {"text": "STRING", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN",
                 "date": "DATE", "timestamp": "TIMESTAMP", "json": "JSON",
                 "decimal": "DECIMAL", "binary": "BINARY"}


def stable_uuid(dictionary_id: str) -> str:
    """The same UUID for the same table or column id in every export, on every machine."""
    return str(uuid.uuid5(NAMESPACE, dictionary_id))


def _analyst_tables(dictionary: dict) -> list[dict]:
    return [t for t in dictionary["tables"] if t["layer"] in ANALYST_LAYERS]


def _extras(column: dict) -> dict[str, Any]:
    """What the standard formats have no field for, kept under names they ignore."""
    return {key: value for key, value in (
        ("unit", column["unit"]), ("pii", column["pii"]), ("fhirSource", column["fhir_source"]),
        ("binding", column["binding"]), ("upstream", column["upstream"] or None)) if value}


def frictionless(dictionary: dict, data_paths: dict[str, str] | None = None) -> dict[str, Any]:
    """A Data Package (datapackage.json) with a Table Schema per analyst table. data_paths maps
    table id -> CSV path relative to the package; without one a resource points at
    <layer>/<table>.csv, where `vitalflow export` would write it."""
    data_paths = data_paths or {}
    tables = _analyst_tables(dictionary)
    ids = {t["id"] for t in tables}
    resources = []
    for table in tables:
        schema: dict[str, Any] = {"fields": [
            {"name": c["name"], "type": _FRICTIONLESS[c["type"]], "description": c["comment"],
             **({"format": "binary"} if c["type"] == "binary" else {}),
             **({"constraints": {"required": True}} if not c["nullable"] else {}),
             **_extras(c)} for c in table["columns"]],
            "primaryKey": table["primary_key"]}
        foreign = [{"fields": [c["name"]], "reference": {
            "resource": c["references"].rsplit(".", 1)[0], "fields": [c["references"].rsplit(
                ".", 1)[1]]}} for c in table["columns"]
            if c["references"] and c["references"].rsplit(".", 1)[0] in ids]
        if foreign:
            schema["foreignKeys"] = foreign
        resources.append({
            "name": table["id"], "id": stable_uuid(table["id"]),
            "path": data_paths.get(table["id"], f"{table['layer']}/{table['name']}.csv"),
            "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
            "title": table["id"], "description": table["description"], "schema": schema,
            "owner": table["owner"]})
    return {"name": "vitalflow", "title": "vitalflow refined and derived data",
            "version": dictionary["version"], "id": stable_uuid("package"),
            "description": "Analyst-visible tables of vitalflow, from its data dictionary.",
            "resources": resources}


def json_schemas(dictionary: dict) -> dict[str, dict[str, Any]]:
    """table id -> a JSON Schema (2020-12) of one row, as `vitalflow export` or an API gives it."""
    schemas = {}
    for table in _analyst_tables(dictionary):
        properties = {}
        for c in table["columns"]:
            kind = dict(_JSON[c["type"]])
            if c["nullable"] and "type" in kind:
                kind["type"] = [kind["type"], "null"]
            properties[c["name"]] = {**kind, "description": c["comment"],
                                     **{f"x-{k}": v for k, v in _extras(c).items()}}
        schemas[table["id"]] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:uuid:{stable_uuid(table['id'])}", "title": table["id"],
            "description": table["description"], "type": "object", "properties": properties,
            "required": [c["name"] for c in table["columns"] if not c["nullable"]],
            "additionalProperties": False, "x-primaryKey": table["primary_key"],
            "x-owner": table["owner"], "x-version": dictionary["version"]}
    return schemas


def openmetadata(dictionary: dict, service: str = "vitalflow",
                 database: str = "vitalflow") -> dict[str, Any]:
    """Entities as OpenMetadata's create requests name them (schemas, tables with columns,
    PII tags and constraints) plus column-level lineage; ids are stable UUIDs."""
    prefix = f"{service}.{database}"
    described = [t for t in dictionary["tables"] if not t["restricted"]]
    tables = []
    for table in described:
        fqn = f"{prefix}.{table['id']}"
        constraints = [{"constraintType": "PRIMARY_KEY", "columns": table["primary_key"]}
                       ] if table["primary_key"] else []
        constraints += [{"constraintType": "FOREIGN_KEY", "columns": [c["name"]],
                         "referredColumns": [f"{prefix}.{c['references']}"]}
                        for c in table["columns"] if c["references"]]
        tables.append({
            "id": stable_uuid(table["id"]), "name": table["name"], "fullyQualifiedName": fqn,
            "databaseSchema": f"{prefix}.{table['layer']}", "description": table["description"],
            "tableType": "Regular", "tableConstraints": constraints,
            "extension": {"ownerFlow": table["owner"], "freshnessColumn": table["freshness"],
                          "access": table["access"]},
            "columns": [{
                "id": stable_uuid(c["id"]), "name": c["name"],
                "fullyQualifiedName": f"{prefix}.{c['id']}",
                "dataType": _OPENMETADATA[c["type"]], "dataTypeDisplay": c["sql_type"],
                "description": c["comment"],
                "constraint": ("PRIMARY_KEY" if c["primary_key"] and len(table["primary_key"]) == 1
                               else "NULL" if c["nullable"] else "NOT_NULL"),
                "tags": [{"tagFQN": "PII.None" if c["pii"] == "none" else "PII.Sensitive"},
                         {"tagFQN": f"vitalflow.pii.{c['pii']}"}],
                "extension": _extras(c)} for c in table["columns"]]})
    lineage = []
    for table in described:
        by_source: dict[str, list[dict]] = {}
        for c in table["columns"]:
            for ref in c["upstream"]:
                source = ref.rsplit(".", 1)[0]
                if source != table["id"]:
                    by_source.setdefault(source, []).append(
                        {"fromColumns": [f"{prefix}.{ref}"], "toColumn": f"{prefix}.{c['id']}"})
        lineage += [{"fromEntity": {"type": "table", "fqn": f"{prefix}.{source}",
                                    "id": stable_uuid(source)},
                     "toEntity": {"type": "table", "fqn": f"{prefix}.{table['id']}",
                                  "id": stable_uuid(table["id"])},
                     "columnsLineage": columns} for source, columns in sorted(by_source.items())]
    return {"databaseService": {"name": service, "serviceType": "Postgres"},
            "database": {"name": database, "fullyQualifiedName": prefix,
                         "id": stable_uuid(database)},
            "databaseSchemas": [{"name": layer["id"], "fullyQualifiedName":
                                 f"{prefix}.{layer['id']}", "id": stable_uuid(layer["id"]),
                                 "description": f"{layer['description']} Access: "
                                                f"{layer['access']}"}
                                for layer in dictionary["layers"]],
            "tables": tables, "lineage": lineage, "version": dictionary["version"]}
