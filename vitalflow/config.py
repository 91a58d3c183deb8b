"""Typed settings from config/vitalflow.toml with VITALFLOW__SECTION__KEY environment overrides."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from vitalflow.audit.settings import AuditSettings
from vitalflow.lineage.settings import LineageSettings
from vitalflow.merge.settings import MergeSettings
from vitalflow.monitoring.settings import AlertingSettings, MonitoringSettings
from vitalflow.privacy.settings import PrivacySettings
from vitalflow.sql.settings import SqlSettings
from vitalflow.terminology.settings import TerminologySettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "vitalflow.toml"


class PathsSettings(BaseModel):
    home: Path = Path(".vitalflow")

    @property
    def root(self) -> Path:
        return self.home if self.home.is_absolute() else PROJECT_ROOT / self.home

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"


class DatabaseSettings(BaseModel):
    url: str = ""
    embedded_port: int = 54329


class IngestSettings(BaseModel):
    batch_rows: int = Field(25_000, gt=0)
    max_record_bytes: int = Field(16 * 1024 * 1024, gt=0)


class RefineSettings(BaseModel):
    observation_codes: list[str] = ["8302-2", "29463-7", "39156-5"]
    excluded_statuses: list[str] = ["entered-in-error", "cancelled"]
    worker_process_min_records: int = Field(200_000, ge=0)
    # An effective time later than now plus this is quarantined as implausible_date.
    future_tolerance_hours: float = Field(24, ge=0)


class DeriveSettings(BaseModel):
    height_window_days: int = Field(365, ge=0)
    child_height_window_days: int = Field(31, ge=0)
    age_bands: list[int] = [0, 18, 30, 45, 65, 80]

    @field_validator("age_bands")
    @classmethod
    def _ascending_from_zero(cls, bands: list[int]) -> list[int]:
        if not bands or bands[0] != 0 or any(low >= high for low, high in zip(bands, bands[1:])):
            raise ValueError("age_bands must start at 0 and be strictly ascending, "
                             "e.g. [0, 18, 65]")
        return bands


class Placement(BaseModel):
    """Where each layer lives: an engine name (parquet, postgresql, iceberg, clickhouse; each
    reached as configured in its section) or a full backend URL."""

    model_config = {"extra": "forbid"}

    raw: str = "parquet"
    refined: str = "postgresql"
    derived: str = "postgresql"

    @field_validator("raw")
    @classmethod
    def _raw_engine(cls, value: str) -> str:
        if value not in RAW_ENGINES:
            raise ValueError(f"raw can live in {' or '.join(RAW_ENGINES)}, not {value!r}")
        return value


RAW_ENGINES = ("parquet", "iceberg")
DEFAULT_PROFILES = {
    "postgres": Placement(),
    "lakehouse": Placement(raw="iceberg", refined="iceberg", derived="iceberg"),
    "clickhouse": Placement(refined="clickhouse", derived="clickhouse"),
    "mixed": Placement(raw="iceberg", refined="postgresql", derived="clickhouse"),
}


class StorageSettings(BaseModel):
    profile: str = "postgres"
    profiles: dict[str, Placement] = DEFAULT_PROFILES

    @field_validator("profiles")
    @classmethod
    def _keep_defaults(cls, profiles: dict[str, Placement]) -> dict[str, Placement]:
        return {**DEFAULT_PROFILES, **profiles}

    def placement(self, profile: str | None = None) -> Placement:
        name = profile or self.profile
        if name not in self.profiles:
            raise ValueError(f"unknown storage profile {name!r}; known: "
                             f"{', '.join(sorted(self.profiles))}")
        return self.profiles[name]


class S3Settings(BaseModel):
    """Object store for Iceberg warehouses. Empty endpoint: the embedded SeaweedFS. Keys come
    from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the embedded store's generated file."""

    endpoint: str = ""
    region: str = "us-east-1"
    bucket: str = "vitalflow"
    embedded_port: int = 8333


class IcebergSettings(BaseModel):
    # Empty: a SQL catalog in the control PostgreSQL. Otherwise iceberg+postgresql://… or
    # iceberg+sqlite:///… (a warehouse=… query parameter overrides the one below).
    catalog_url: str = ""
    # Empty: s3://<s3.bucket>/warehouse on the configured (or embedded) object store.
    warehouse: str = ""


class ClickHouseSettings(BaseModel):
    # Empty: the in-process engine (chdb) under paths.home; or clickhouse://host:8123/db.
    url: str = ""
    # Prepended to the layer's database names (e.g. "staging_" -> staging_refined), so several
    # environments can share one server.
    database_prefix: str = ""


class FilterSettings(BaseModel):
    """[filter] settings: where the whitelist rules live."""

    enabled: bool = True
    rules_file: Path = Path("config/whitelist.yaml")

    @property
    def path(self) -> Path:
        return self.rules_file if self.rules_file.is_absolute() else PROJECT_ROOT / self.rules_file


class GenerateSettings(BaseModel):
    patients: int = 500
    seed: int = 42
    defect_rate: float = Field(0.02, ge=0, le=1)


class Settings(BaseSettings):
    """All vitalflow settings; see config/vitalflow.toml for the meaning of each key."""

    model_config = SettingsConfigDict(env_prefix="VITALFLOW__", env_nested_delimiter="__",
                                      extra="forbid")

    paths: PathsSettings = PathsSettings()
    database: DatabaseSettings = DatabaseSettings()
    ingest: IngestSettings = IngestSettings()
    refine: RefineSettings = RefineSettings()
    derive: DeriveSettings = DeriveSettings()
    generate: GenerateSettings = GenerateSettings()
    storage: StorageSettings = StorageSettings()
    s3: S3Settings = S3Settings()
    iceberg: IcebergSettings = IcebergSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    filter: FilterSettings = FilterSettings()
    privacy: PrivacySettings = PrivacySettings()
    merge: MergeSettings = MergeSettings()
    terminology: TerminologySettings = TerminologySettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    alerting: AlertingSettings = AlertingSettings()
    audit: AuditSettings = AuditSettings()
    sql: SqlSettings = SqlSettings()
    lineage: LineageSettings = LineageSettings()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, _TomlSource(settings_cls))


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by VITALFLOW_CONFIG (default config/vitalflow.toml)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - whole-file source
        return None, field_name, False

    def __call__(self) -> dict:
        path = Path(os.environ.get("VITALFLOW_CONFIG", DEFAULT_CONFIG))
        if not path.exists():
            if "VITALFLOW_CONFIG" in os.environ:
                raise FileNotFoundError(f"VITALFLOW_CONFIG points to {path}, which does not exist")
            return {}
        with path.open("rb") as handle:
            return tomllib.load(handle)


def load_settings(**overrides) -> Settings:
    """Settings from file and environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)
