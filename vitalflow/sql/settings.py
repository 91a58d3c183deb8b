"""Settings of self-serve SQL (the `[sql]` section): engines, limits per role, console, Trino."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

ENGINES = ("duckdb", "trino")
DIALECTS = ("trino", "duckdb")


class RoleLimits(BaseModel):
    row_limit: int = Field(gt=0)
    timeout_seconds: float = Field(gt=0)


class SqlSettings(BaseModel):
    """[sql]: see config/vitalflow.toml for each key."""

    engine: str = "duckdb"
    # The dialect queries are written in; sqlglot translates to the engine's. Plain ANSI SELECTs
    # read the same in both.
    dialect: str = "trino"
    roles: dict[str, RoleLimits] = {
        "analyst": RoleLimits(row_limit=10_000, timeout_seconds=30),
        "admin": RoleLimits(row_limit=1_000_000, timeout_seconds=300),
    }
    # Role of `vitalflow sql` when --role is not given.
    cli_role: str = "analyst"
    # Analysts' aggregates with a count between 1 and k-1 are refused; 0 turns the rule off.
    small_cell_k: int = Field(0, ge=0)
    # Console users (hashed passwords, token hashes); relative to paths.home.
    users_file: Path = Path("secrets/sql_users.json")
    console_port: int = 8765
    # How long a lakehouse or ClickHouse table's snapshot is reused before it is looked up again.
    catalog_ttl_seconds: float = Field(5.0, ge=0)
    trino_port: int = 8080
    trino_heap: str = "1G"
    trino_version: str = "476"
    # Empty: ~/.cache/vitalflow/trino (where infra/trino/install.sh puts the server).
    trino_home: str = ""

    @field_validator("engine")
    @classmethod
    def _engine(cls, value: str) -> str:
        if value not in ENGINES:
            raise ValueError(f"sql.engine must be one of {', '.join(ENGINES)}, not {value!r}")
        return value

    @field_validator("dialect")
    @classmethod
    def _dialect(cls, value: str) -> str:
        if value not in DIALECTS:
            raise ValueError(f"sql.dialect must be one of {', '.join(DIALECTS)}, not {value!r}")
        return value

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: dict[str, RoleLimits]) -> dict[str, RoleLimits]:
        missing = {"analyst", "admin"} - roles.keys()
        if missing:
            raise ValueError(f"sql.roles needs limits for {', '.join(sorted(missing))}")
        return roles
