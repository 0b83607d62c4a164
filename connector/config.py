"""The admin's configuration (``config/*.yaml``): pydantic models, ``${ENV}`` secrets,
file:line errors.

Adapter settings are validated by the adapter's own ``Settings`` model from the registry, so a
typo in any section is reported before anything runs.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

import adapters
from connector.errors import ConfigError
from connector.yamlfile import Loc, YamlDocument, load_yaml

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_WORDS = ("token", "secret", "password", "key")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(Strict):
    url: str = Field("sqlite:///closedloop.db", description="Any SQLAlchemy URL; SQLite uses WAL.")


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
    rates: dict[str, float] = Field(default_factory=dict, description="Units of base per unit.")

    @field_validator("base")
    @classmethod
    def _upper(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError("expected a 3-letter ISO currency code such as USD")
        return value.upper()

    def to_base(self, amount: float, currency: str | None) -> float | None:
        """``amount`` in base currency, or None when no rate is configured for ``currency``."""
        code = (currency or self.base).upper()
        if code == self.base:
            return amount
        rate = self.rates.get(code)
        return None if rate is None else amount * rate


StepName = Literal["extract", "match", "writeback", "revenue", "attribute"]
ALL_STEPS: list[StepName] = ["extract", "match", "writeback", "revenue", "attribute"]


class JobConfig(Strict):
    """One scheduled job of ``closedloop serve``: which steps, and when (cron or interval)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    steps: list[StepName] = Field(default_factory=lambda: list(ALL_STEPS), min_length=1)
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


class LoadedConfig:
    """A validated config with its adapters' settings and the folder paths resolve against."""

    def __init__(
        self,
        path: Path,
        config: Config,
        crm_settings: Any,
        sources: dict[str, Any],
        secrets: set[str] | None = None,
    ):
        self.path = path
        self.config = config
        self.crm_settings = crm_settings
        self.source_settings = sources
        self.secrets = secrets or set()  # every interpolated value: redacted from logs

    def resolve(self, relative: Path) -> Path:
        return relative if relative.is_absolute() else (self.path.parent / relative).resolve()

    def store_url(self) -> str:
        """The store URL; a relative SQLite path is taken from the config file's folder."""
        url = self.config.store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            return prefix + str(self.resolve(Path(url[len(prefix) :])))
        return url


def _is_secret(loc: Loc) -> bool:
    return any(word in str(part).lower() for part in loc for word in _SECRET_WORDS)


def format_validation(doc: YamlDocument, error: ValidationError, prefix: Loc = ()) -> str:
    """One line per problem: ``file:line: field: what was expected``."""
    problems = []
    for item in error.errors():
        loc = (*prefix, *item["loc"])
        got = "" if _is_secret(loc) else f" (got {item['input']!r})"
        if item["type"] in {"missing", "extra_forbidden"}:
            got = ""
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{doc.where(loc)}: {message}{got}")
    return "\n".join(problems)


def validate(doc: YamlDocument, model: type[Any], data: Any, loc: Loc = ()) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation(doc, exc, loc)) from None


def _secrets(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    warn_if_readable_by_others(path)
    data = load_yaml(path).data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of NAME: value")
    return {str(k): str(v) for k, v in data.items()}


def _interpolate(doc: YamlDocument, value: Any, loc: Loc, secrets: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(doc, v, (*loc, k), secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(doc, v, (*loc, i), secrets) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name, secrets.get(name))
        if found is None:
            raise ConfigError(
                f"{doc.where(loc)}: secret ${{{name}}} is not set: export {name}=... "
                "or add it to the secrets_file"
            )
        return found

    return _ENV.sub(substitute, value)


def warn_if_readable_by_others(path: Path) -> None:
    import logging

    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logging.getLogger(__name__).warning(
            "%s is readable by other users; run: chmod 600 %s", path, path
        )


def load_config(path: Path) -> LoadedConfig:
    """Read, interpolate and validate ``path`` and its adapters' settings; raise ConfigError."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw_secrets = doc.data.get("secrets_file")
    secrets_path = (path.parent / raw_secrets) if raw_secrets else None
    secrets = _secrets(secrets_path)
    data = _interpolate(doc, doc.data, (), secrets)
    config: Config = validate(doc, Config, data)
    if config.crm.kind not in adapters.CRMS:
        known = ", ".join(sorted(adapters.CRMS))
        raise ConfigError(
            f"{doc.where(('crm', 'kind'))}: unknown CRM {config.crm.kind!r} "
            f"(expected one of {known})"
        )
    crm_settings = validate(
        doc, adapters.crm_class(config.crm.kind).Settings, config.crm.settings, ("crm", "settings")
    )
    sources: dict[str, Any] = {}
    for i, source in enumerate(config.sources):
        if source.kind not in adapters.SOURCES:
            known = ", ".join(sorted(adapters.SOURCES))
            raise ConfigError(
                f"{doc.where(('sources', i, 'kind'))}: unknown source {source.kind!r} "
                f"(expected one of {known})"
            )
        if source.name in sources:
            raise ConfigError(
                f"{doc.where(('sources', i, 'name'))}: duplicate source name {source.name!r}"
            )
        model = adapters.source_class(source.kind).Settings
        settings = validate(doc, model, source.settings, ("sources", i, "settings"))
        sources[source.name] = _relative_to(path.parent, settings)
    interpolated = _found_values(doc.data, secrets)
    inline = [
        value
        for model in (crm_settings, *sources.values())
        for _, value in model
        if isinstance(value, SecretStr) and value.get_secret_value() not in interpolated
    ]
    if inline:
        warn_if_readable_by_others(path)  # secrets written in the file itself
    return LoadedConfig(
        path.resolve(), config, _relative_to(path.parent, crm_settings), sources, interpolated
    )


def _found_values(data: Any, secrets: dict[str, str]) -> set[str]:
    """The values ``${NAME}`` placeholders in ``data`` stand for."""
    text = json.dumps(data, default=str)
    names = set(_ENV.findall(text))
    return {v for n in names if (v := os.environ.get(n, secrets.get(n)))}


def _relative_to(folder: Path, settings: BaseModel) -> BaseModel:
    """File paths in adapter settings are relative to the config file, not the working dir;
    a key file others can read gets a warning."""
    fixed = {
        name: (folder / value).resolve()
        for name, value in settings
        if isinstance(value, Path) and not value.is_absolute()
    }
    settings = settings.model_copy(update=fixed) if fixed else settings
    for name, value in settings:
        if isinstance(value, Path) and any(
            word in name for word in _SECRET_WORDS + ("credential",)
        ):
            warn_if_readable_by_others(value)
    return settings


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)
