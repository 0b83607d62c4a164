"""The fleet's config (``fleet.yaml``) and its accounts: ``accounts/<name>/closedloop.yaml``,
or one file whose ``accounts:`` list holds each account's config with its ``name``.

Every account's config is validated exactly as a single company's (file:line errors). Its
store is the fleet's one PostgreSQL database, in a schema of its own (``account_<name>``): the
engine's connections set ``search_path`` to it, so no query of the run can reach another
account's rows and the single-company code runs unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connector.config.loader import LoadedConfig, interpolated_yaml, load_config, validate
from connector.config.settings import Strict
from connector.config.yamlfile import load_yaml
from connector.kernel import redact
from connector.kernel.errors import ConfigError

ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")
CONFIG_FILE = "closedloop.yaml"


class FleetConfig(Strict):
    """``fleet.yaml``: where the broker, shared state, store and accounts are."""

    broker_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672//", description="RabbitMQ, Celery's broker."
    )
    redis_url: str | None = Field(
        None,
        description="Redis for the rate limiters shared by every worker; without it each worker "
        "limits itself alone.",
    )
    store_url: str = Field(description="The PostgreSQL database every account's schema is in.")
    accounts: Path = Field(
        Path("accounts"),
        description="The folder of <name>/closedloop.yaml, one per account, or a YAML file "
        "whose `accounts:` list holds each account's config and its `name`.",
    )
    limit_groups: dict[str, str] = Field(
        default_factory=dict,
        description="account: group. Accounts writing to one CRM portal or org (or one ad "
        "account) share its rate limits under the group's name; by default an account's "
        "limits are its own.",
    )
    when_busy: Literal["wait", "drop"] = Field(
        "wait",
        description="A request for an account whose run is in progress: wait (re-queued every "
        "busy_retry_seconds until it can run) or drop.",
    )
    busy_retry_seconds: float = Field(10.0, gt=0)
    queue: str = Field("closedloop", pattern=r"^[A-Za-z0-9_.-]+$")
    host: str = Field("127.0.0.1", description="The scheduler's /healthz and /metrics.")
    port: int = Field(9464, ge=0, le=65535)


class Fleet:
    """A loaded ``fleet.yaml`` and the folder its relative paths resolve against."""

    def __init__(self, path: Path, config: FleetConfig) -> None:
        self.path = path
        self.config = config
        self.accounts_path = (path.parent / config.accounts).resolve()

    def names(self) -> list[str]:
        """Every account (sorted); a bad or repeated name is an error naming where it is."""
        return sorted(self._entries())

    def _entries(self) -> dict[str, int | None]:
        """Each account's name and its place in the list file (None: a folder)."""
        where = self.accounts_path
        if where.is_file():
            return self._listed()
        if not where.is_dir():
            raise ConfigError(f"{self.path}: accounts: {where} does not exist")
        found: dict[str, int | None] = {}
        for folder in sorted(where.iterdir()):
            if (folder / CONFIG_FILE).is_file():
                _checked_name(folder.name, str(folder))
                found[folder.name] = None
        return found

    def _listed(self) -> dict[str, int | None]:
        doc = load_yaml(self.accounts_path)
        listed = doc.data.get("accounts") if isinstance(doc.data, dict) else None
        if not isinstance(listed, list):
            raise ConfigError(f"{self.accounts_path}: expected `accounts:`, a list of configs")
        found: dict[str, int | None] = {}
        for i, entry in enumerate(listed):
            where = doc.where(("accounts", i, "name"))
            name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
            _checked_name(name, where)
            if name in found:
                raise ConfigError(f"{where}: account {name!r} is listed twice")
            found[name] = i
        return found

    def check_name(self, account: str) -> None:
        self._place(account)

    def _place(self, account: str) -> int | None:
        entries = self._entries()
        if account not in entries:
            expected = (
                f"an entry `name: {account}` in {self.accounts_path}"
                if self.accounts_path.is_file()
                else f"{self.accounts_path}/{account}/{CONFIG_FILE}"
            )
            raise ConfigError(f"no account {account!r}: expected {expected}")
        return entries[account]

    def account(self, name: str) -> LoadedConfig:
        """The account's config, validated as a company's, with the fleet's store in its
        schema."""
        place = self._place(name)
        if place is None:
            loaded = load_config(self.accounts_path / name / CONFIG_FILE)
        else:
            loaded = load_config(self.accounts_path, section=("accounts", place))
        store = loaded.config.store.model_copy(update={"url": self.account_url(name)})
        loaded.config = loaded.config.model_copy(update={"store": store})
        return loaded

    def limit_group(self, name: str) -> str:
        return self.config.limit_groups.get(name, name)

    def account_url(self, name: str) -> str:
        """The store URL whose connections see only the account's schema."""
        url = make_url(self.config.store_url)
        options = f"-csearch_path={schema_of(name)}"
        return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def _checked_name(name: str, where: str) -> None:
    if not ACCOUNT_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: account names are 1-40 lower-case letters, digits and _ (starting with "
            f"a letter or digit); got {name!r}"
        )


def schema_of(account: str) -> str:
    if not ACCOUNT_NAME.fullmatch(account):
        raise ConfigError(f"{account!r} is not an account name")
    return f"account_{account}"


def load_fleet(path: Path) -> Fleet:
    """Read and validate ``fleet.yaml`` (``${ENV}`` interpolated, file:line errors)."""
    doc, data = interpolated_yaml(path)
    config: FleetConfig = validate(doc, FleetConfig, data)
    try:
        url = make_url(config.store_url)
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() != "postgresql":
        raise ConfigError(
            f"{doc.where(('store_url',))}: store_url: a fleet's store is PostgreSQL, one schema "
            "per account (expected postgresql+psycopg://user@host:5432/closedloop)"
        )
    redact.register(_passwords(config.store_url, config.broker_url, config.redis_url or ""))
    return Fleet(path.resolve(), config)


def _passwords(*urls: str) -> set[str]:
    """The passwords written in the fleet's URLs: never in a log line or an error."""
    found = set()
    for url in urls:
        try:
            password = make_url(url).password if url else None
        except ArgumentError:  # not a URL SQLAlchemy parses: its parts are not told apart
            continue
        if password:
            found.add(str(password))
    return found
