"""The admin's configuration file (``config/closedloop.yaml``) as pydantic models.

These models are the single source of truth: the loader validates against them and
``closedloop schema`` writes their JSON Schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(Strict):
    url: str = Field("sqlite:///closedloop.db", description="Any SQLAlchemy URL; SQLite uses WAL.")
    lock_stale_seconds: int = Field(
        60,
        ge=1,
        description="A run renews its lock every sixth of this; a lock not renewed for this "
        "long (its process died) is taken over and its run marked killed.",
    )


class CrmConfig(Strict):
    kind: str = Field(description="A registered CRM adapter: hubspot or salesforce.")
    settings: dict[str, Any] = Field(default_factory=dict)


class SourceConfig(Strict):
    name: str
    kind: str = Field(description="A registered source adapter, e.g. ga4, google_ads, csv_files.")
    settings: dict[str, Any] = Field(default_factory=dict)


class MappingsConfig(Strict):
    channels: Path = Path("../mappings/channels.yaml")
    crm: Path = Path("../mappings/hubspot.yaml")
    campaigns: Path | None = None
    conversions: Path | None = Field(
        None, description="CRM milestones sent back to the ad platforms (conversions.yaml)."
    )


ModelName = Literal[
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
    "w_shaped",
    "full_path",
    "markov",
    "markov_k",
    "shapley",
]


MODEL_NAMES: tuple[str, ...] = get_args(ModelName)
DEFAULT_MODELS: list[ModelName] = ["first_touch", "last_touch", "linear"]


class AttributionConfig(Strict):
    """Model knobs (defaults are the usual ones); weights are normalised per journey."""

    account_based: bool = Field(False, description="Journeys of all the deal account's contacts.")
    half_life_days: float = Field(7.0, gt=0, description="time_decay: credit halves every N days.")
    position_based: tuple[float, float, float] = (0.4, 0.2, 0.4)
    w_shaped: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.1)
    full_path: tuple[float, float, float, float, float] = (0.225, 0.225, 0.225, 0.225, 0.1)
    markov_order: int = Field(2, ge=1, le=4, description="markov_k: states are k-channel tuples.")
    shapley_samples: int = Field(2000, ge=2)


class SyncConfig(Strict):
    initial_days: int = Field(180, ge=1, description="History read on the first run.")
    lookback_days: int = Field(3, ge=0, description="Re-read window: sources restate recent days.")
    attribution_window_days: int = Field(90, ge=1, description="Touches before a milestone.")
    models: list[ModelName] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    report_model: ModelName = "linear"
    attribution: AttributionConfig = AttributionConfig()
    deal_contacts: Literal["all", "first"] = "all"


class CurrencyConfig(Strict):
    base: str = "USD"
    rates: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="Units of base per unit; each greater than 0."
    )

    @field_validator("base")
    @classmethod
    def _upper(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError("expected a 3-letter ISO currency code such as USD")
        return value.upper()

    @field_validator("rates")
    @classmethod
    def _codes(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [code for code in value if not re.fullmatch(r"[A-Za-z]{3}", code)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a 3-letter ISO currency code such as EUR")
        return {code.upper(): rate for code, rate in value.items()}

    def to_base(self, amount: float, currency: str | None) -> float | None:
        """``amount`` in base currency, or None when no rate is configured for ``currency``."""
        code = (currency or self.base).upper()
        if code == self.base:
            return amount
        rate = self.rates.get(code)
        return None if rate is None else amount * rate


# The one step order, used by `sync`, `serve`'s jobs and `--only`: conversions are sent once the
# run's revenue and attribution are known; write-back comes last so deals receive the
# attribution summary of the same run.
StepName = Literal["extract", "match", "revenue", "attribute", "conversions", "writeback"]
ALL_STEPS: tuple[StepName, ...] = get_args(StepName)


class JobConfig(Strict):
    """One scheduled job of ``closedloop serve``: which steps, and when (cron or interval)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    steps: list[StepName] = Field(
        default_factory=lambda: list(ALL_STEPS),
        min_length=1,
        description="Which steps; they always run in the order " + " -> ".join(ALL_STEPS) + ".",
    )
    cron: str | None = Field(None, description="Five-field crontab, UTC: '15 * * * *'.")
    interval_minutes: int | None = Field(None, ge=1)
    run_on_start: bool = Field(False, description="Also run once when the service starts.")

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value, timezone="UTC")
            except ValueError as exc:
                raise ValueError(
                    f"invalid cron {value!r}: {exc} (expected 'min hour day month weekday')"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> JobConfig:
        if (self.cron is None) == (self.interval_minutes is None):
            raise ValueError("give exactly one of `cron` or `interval_minutes`")
        return self


class ServiceConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(
        9464, ge=0, le=65535, description="/healthz and /metrics; 0 picks a free port."
    )
    log_format: Literal["json", "text"] = "json"
    misfire_grace_seconds: int = Field(600, ge=1)
    shutdown_timeout_seconds: int = Field(120, ge=1, description="Wait for the batch in flight.")
    jobs: list[JobConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_jobs(self) -> ServiceConfig:
        names = [j.name for j in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError("job names must be unique")
        return self


class Config(Strict):
    store: StoreConfig = StoreConfig()
    crm: CrmConfig
    sources: list[SourceConfig] = Field(default_factory=list)
    mappings: MappingsConfig = MappingsConfig()
    sync: SyncConfig = SyncConfig()
    currency: CurrencyConfig = CurrencyConfig()
    service: ServiceConfig = ServiceConfig()
    secrets_file: Path | None = Field(None, description="YAML of NAME: value for ${NAME}.")
