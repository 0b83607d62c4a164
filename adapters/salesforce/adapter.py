"""Salesforce CRM adapter (simple-salesforce 1.12.10 over the REST API).

Reads, with SOQL through ``query/`` and paged by ``nextRecordsUrl``:
  - ``Lead`` and ``Contact`` (people; a converted lead points to its contact via ``merged_into``),
    incrementally by ``SystemModstamp``;
  - ``Opportunity`` (deals) with buyers from ``OpportunityContactRole`` (primary or all roles).
Writes field values on people:
  - sObject Collections (``PATCH composite/sobjects``, 200 records a call, allOrNone false);
  - above ``bulk_threshold`` records, Bulk API 2.0 ``update`` ingest jobs (CSV, polled here).
Also: ``sobjects/{type}/describe`` for the preflight and ``limits/`` for the API budget.

References: REST https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/ ,
Bulk API 2.0 https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/ ,
SOQL https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/ .
How the client behaves against a local server: /work/shared/API_NOTES.md §1.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import quote_plus, urlsplit

import jwt
import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceBulkV2LoadError,
    SalesforceError,
    SalesforceExpiredSession,
)
from simple_salesforce.login import SalesforceLogin

from adapters._http import retry_after_header
from connector.kernel import metrics
from connector.kernel.errors import BudgetExhausted, ClosedloopError, ConfigError, TransientError
from connector.kernel.records import (
    CrmDeal,
    CrmRecord,
    CurrencyRate,
    FieldSpec,
    RecordUpdate,
    WriteResult,
)
from connector.kernel.retry import call_with_retry
from connector.kernel.timeutil import iso_z, parse_datetime, start_of_day

log = logging.getLogger(__name__)
T = TypeVar("T")

SYSTEM = "salesforce"
COLLECTION_SIZE = 200  # sObject Collections maximum
BULK_JOB_ROWS = 100_000  # rows per Bulk API 2.0 job (well under its 150 MB upload limit)
MAX_QUERY_CHARS = 15_000  # URL-encoded SOQL per GET (Salesforce refuses URIs over 16,384)
ROLE_BATCH = 200  # opportunities whose contact roles are read in one query
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
FIELD_TYPES = {
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "number",
    "long": "number",
    "date": "date",
    "datetime": "datetime",
    "boolean": "bool",
    "picklist": "enumeration",
    "multipicklist": "enumeration",
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    '"': '\\"',
}


def soql_quote(value: str) -> str:
    """A SOQL string literal: quoted, with backslashes, quotes and control characters escaped."""
    return "'" + "".join(_SOQL_ESCAPES.get(char, char) for char in value) + "'"


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal (whole seconds, UTC; ``>=`` on it never skips a record)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SalesforceSettings(BaseModel):
    """Connection and behaviour of the Salesforce adapter (one auth method, complete)."""

    model_config = ConfigDict(extra="forbid")

    instance_url: str | None = Field(
        None,
        description="https://<mydomain>.my.salesforce.com; required with session_id "
        "(the login flows learn it from the login).",
    )
    session_id: SecretStr | None = Field(None, description="An access token / session id.")
    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    consumer_key: str | None = Field(None, description="Connected app key for the JWT flow.")
    private_key_file: Path | None = Field(None, description="PEM key that signs the JWT.")
    login_url: str = Field(
        "https://login.salesforce.com",
        description="https://login.salesforce.com, https://test.salesforce.com (sandboxes) or "
        "https://<mydomain>.my.salesforce.com.",
    )
    api_version: str = Field("59.0", pattern=r"^\d+\.\d$")
    person_objects: list[Literal["Lead", "Contact"]] = Field(["Lead", "Contact"], min_length=1)
    contact_roles: Literal["primary", "all"] = "primary"
    bulk_threshold: int = Field(10_000, ge=0, description="More updates than this: Bulk API 2.0.")
    api_budget_share: float = Field(
        0.25, gt=0, le=1, description="Share of the org's daily API requests one run may use."
    )
    page_size: int | None = Field(None, ge=200, le=2000, description="Query batch size.")
    verify_tls: bool = True
    allow_http: bool = Field(False, description="Accept http:// on 127.0.0.1 (the emulator).")
    bulk_poll_interval: float = Field(2.0, gt=0)
    bulk_timeout: float = Field(3600.0, gt=0)
    timeout: float = Field(120.0, gt=0, description="Seconds per HTTP request.")

    @model_validator(mode="after")
    def _one_auth_method(self) -> SalesforceSettings:
        methods: dict[str, list[object]] = {
            "session_id": [self.session_id],
            "username + password + security_token": [
                self.username,
                self.password,
                self.security_token,
            ],
            "JWT (username + consumer_key + private_key_file)": [
                self.username,
                self.consumer_key,
                self.private_key_file,
            ],
        }
        complete = [name for name, parts in methods.items() if all(p is not None for p in parts)]
        if len(complete) != 1:
            found = "none is complete" if not complete else "got " + " and ".join(complete)
            raise ValueError(f"give exactly one auth method: {', '.join(methods)}; {found}")
        if self.session_id is not None and not self.instance_url:
            raise ValueError("session_id needs instance_url (https://<mydomain>.my.salesforce.com)")
        return self

    @property
    def auth_method(self) -> Literal["session", "password", "jwt"]:
        if self.session_id is not None:
            return "session"
        return "password" if self.password is not None else "jwt"


class _ApiBudget:
    """This run's share of the org's daily API requests, fed by every response's header."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.sent = 0
        self.max: int | None = None
        self.org_used: int | None = None

    def start(self, max_requests: int, remaining: int) -> None:
        self.max = max_requests
        self.org_used = max_requests - remaining

    @property
    def allowed(self) -> int:
        return max(1, int(self.share * (self.max or 0)))

    def before_request(self) -> None:
        if self.max is not None:
            if self.sent >= self.allowed:
                raise BudgetExhausted(
                    f"Salesforce API budget used up: this run sent {self.sent} requests, its limit "
                    f"is {self.allowed} ({self.share:.0%} of the org's {self.max} daily requests); "
                    "the rest waits for the next run (or raise api_budget_share)"
                )
            if self.org_used is not None and self.max - self.org_used <= 1:
                raise BudgetExhausted(
                    f"Salesforce org has {self.max - self.org_used} of its {self.max} daily API "
                    f"requests left (this run sent {self.sent}); stopping so other integrations "
                    "keep working"
                )
        self.sent += 1

    def observe(self, limit_info: str | None) -> None:
        match = re.search(r"api-usage=(\d+)/(\d+)", limit_info or "")
        if match:
            self.org_used, self.max = int(match.group(1)), int(match.group(2))


class _MeteredSession(requests.Session):
    """The requests session every call goes through: budget check, metrics, limit header."""

    def __init__(self, budget: _ApiBudget, timeout: float) -> None:
        super().__init__()
        self.budget = budget
        self.timeout = timeout
        self.last_retry_after: float | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.budget.before_request()
        self.last_retry_after = None
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        metrics.API_CALLS.labels(SYSTEM).inc()
        response = super().send(request, **kwargs)
        self.budget.observe(response.headers.get("Sforce-Limit-Info"))
        self.last_retry_after = retry_after_header(response)
        return response


class _LocalRewrite(requests.adapters.HTTPAdapter):
    """simple-salesforce builds every URL as https://host; send them to a local http server."""

    def __init__(self, public: str, local: str) -> None:
        super().__init__()
        self.public, self.local = public, local

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        if request.url and request.url.startswith(self.public):
            request.url = self.local + request.url[len(self.public) :]
        return super().send(request, **kwargs)


def _error_code(exc: SalesforceError) -> tuple[str, str]:
    content = exc.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", "")), str(content[0].get("message", ""))
    return "", str(content)[:300]


def classify(
    exc: Exception, action: str, retry_after: float | None = None
) -> ClosedloopError | None:
    """The one table from client exceptions to closedloop's (None: not ours to translate)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return ConfigError(f"Salesforce {action}: TLS failed ({exc}); check the URL and verify_tls")
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return TransientError(f"Salesforce {action}: connection failed ({type(exc).__name__})")
    if isinstance(exc, SalesforceAuthenticationFailed):
        return ConfigError(
            f"Salesforce login failed ({exc.code}): {exc.auth_message} "
            "Check the username, password, security token or connected app."
        )
    if isinstance(exc, SalesforceBulkV2LoadError):
        return TransientError(f"Salesforce {action}: {exc}")
    if not isinstance(exc, SalesforceError):
        return None
    code, message = _error_code(exc)
    if exc.status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        if "concurrent" in message.lower():  # too many long-running requests: passes
            return TransientError(f"Salesforce {action}: {message}", retry_after)
        return BudgetExhausted(
            f"Salesforce {action}: the org's daily API limit is used up "
            f"({message}); resume after the 24-hour window frees requests"
        )
    if exc.status == 401:
        return ConfigError(f"Salesforce {action}: session invalid ({code}: {message})")
    if exc.status == 403:
        return ConfigError(
            f"Salesforce {action} refused ({code}: {message}): give the "
            "integration user API access and permission on this object/field"
        )
    if exc.status == 429 or exc.status >= 500:
        return TransientError(f"Salesforce {action}: HTTP {exc.status} {code}", retry_after)
    return ConfigError(f"Salesforce {action} failed: HTTP {exc.status} {code}: {message}")


def _text(value: Any) -> str | None:
    """A field value as the core stores it (strings; booleans lower-case, numbers as printed)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _in_chunks(values: Sequence[str], fixed: str) -> Iterator[list[str]]:
    """Split values for ``IN (...)`` so the URL-encoded query stays under the URI limit."""
    room = MAX_QUERY_CHARS - len(quote_plus(fixed))
    chunk: list[str] = []
    used = 0
    for value in values:
        cost = len(quote_plus(soql_quote(value) + ", "))
        if chunk and used + cost > room:
            yield chunk
            chunk, used = [], 0
        chunk.append(value)
        used += cost
    if chunk:
        yield chunk


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _bulk_error(text: str) -> str:
    """``CODE:message:Field1,Field2 --`` (Bulk API 2.0 sf__Error) -> ``CODE: message``."""
    code, _, rest = text.removesuffix(" --").partition(":")
    message, _, fields = rest.rpartition(":")
    if not message or " " in fields:
        message = rest
    return f"{code}: {message}"


def _save_error(item: dict[str, Any]) -> str:
    return "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in item.get("errors") or [])


class SalesforceCrm:
    """closedloop's CrmAdapter for Salesforce: people are Leads and Contacts."""

    Settings: ClassVar[type[SalesforceSettings]] = SalesforceSettings
    max_batch: ClassVar[int] = COLLECTION_SIZE

    def __init__(self, settings: SalesforceSettings) -> None:
        self.settings = settings
        self._budget = _ApiBudget(settings.api_budget_share)
        self._session = _MeteredSession(self._budget, settings.timeout)
        self._session.verify = settings.verify_tls
        self._sf: Salesforce | None = None
        self._described: dict[str, dict[str, dict[str, Any]]] = {}
        self._limits_read = False

    @property
    def person_objects(self) -> tuple[str, ...]:
        return tuple(self.settings.person_objects)

    @property
    def deal_object(self) -> str:
        return "Opportunity"

    def api_calls(self) -> int:
        """HTTP requests this adapter sent (logins included)."""
        return self._budget.sent

    def close(self) -> None:
        """Close the HTTP connections (call when the run is done)."""
        self._session.close()

    def __enter__(self) -> SalesforceCrm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection ------------------------------------------------------------------------
    def _local(self, url: str) -> str | None:
        """``http://host:port`` when ``url`` is an allowed local http server, None for https."""
        parts = urlsplit(url)
        if parts.scheme == "https":
            return None
        if parts.scheme == "http" and parts.hostname in LOCAL_HOSTS and self.settings.allow_http:
            return f"http://{parts.netloc}"
        raise ConfigError(
            f"Salesforce URL {url!r} must start with https:// (http:// only on "
            "127.0.0.1 with allow_http: true, for the emulator)"
        )

    def _mount(self, public: str, local: str) -> None:
        if public + "/" not in self._session.adapters:
            self._session.mount(public + "/", _LocalRewrite(public, local))

    def _connect(self, session_id: str, instance: str, plain_http: bool) -> None:
        if plain_http:
            self._mount(f"https://{instance}", f"http://{instance}")
        self._sf = Salesforce(
            session_id=session_id,
            instance=instance,
            session=self._session,
            version=self.settings.api_version,
        )

    def _login(self) -> None:
        """Password (SOAP) or JWT bearer login through simple-salesforce's own flows."""
        s = self.settings
        local = self._local(s.login_url)
        if local:
            self._mount("https://login.salesforce.com", local)
            domain = "login"
        else:
            host = urlsplit(s.login_url).hostname or ""
            if not host.endswith(".salesforce.com"):
                raise ConfigError(
                    f"login_url {s.login_url!r}: expected https://login.salesforce."
                    "com, https://test.salesforce.com or a My Domain URL"
                )
            domain = host.removesuffix(".salesforce.com")
        if s.auth_method == "password":
            assert s.password is not None and s.security_token is not None
            session_id, instance = SalesforceLogin(
                username=s.username,
                password=s.password.get_secret_value(),
                security_token=s.security_token.get_secret_value(),
                sf_version=s.api_version,
                session=self._session,
                domain=domain,
            )
        else:
            session_id, instance = self._jwt_login(domain)
        on_local_host = urlsplit(f"//{instance}").hostname in LOCAL_HOSTS
        self._connect(session_id, instance, plain_http=bool(local) and on_local_host)

    def _jwt_login(self, domain: str) -> tuple[str, str]:
        s = self.settings
        if s.private_key_file is None or not s.private_key_file.is_file():
            raise ConfigError(f"private_key_file {s.private_key_file} does not exist")
        try:
            result: tuple[str, str] = SalesforceLogin(
                username=s.username,
                consumer_key=s.consumer_key,
                privatekey_file=str(s.private_key_file),
                session=self._session,
                domain=domain,
            )
        except (ValueError, TypeError, NotImplementedError, jwt.PyJWTError) as exc:  # bad key
            raise ConfigError(
                f"private_key_file {s.private_key_file}: cannot sign the JWT ({type(exc).__name__})"
            ) from None
        return result

    def _client(self) -> Salesforce:
        if self._sf is None:
            s = self.settings
            if s.auth_method == "session":
                assert s.session_id is not None and s.instance_url is not None
                plain_http = self._local(s.instance_url) is not None
                self._connect(
                    s.session_id.get_secret_value(), urlsplit(s.instance_url).netloc, plain_http
                )
            else:
                self._login()
        assert self._sf is not None
        return self._sf

    def _start(self) -> None:
        """First use: connect, then learn the org's daily limit for the budget."""
        if not self._limits_read:
            limits = self._call("read API limits", lambda sf: sf.limits())
            daily = limits["DailyApiRequests"]
            self._budget.start(int(daily["Max"]), int(daily["Remaining"]))
            self._limits_read = True

    # -- calls -----------------------------------------------------------------------------
    def _guarded(self, action: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ClosedloopError:
            raise
        except Exception as exc:
            error = classify(exc, action, self._session.last_retry_after)
            if error is None:
                raise
            raise error from exc

    def _call(self, action: str, fn: Callable[[Salesforce], T]) -> T:
        """One API call: retried when transient; one re-login when the session expired."""

        def attempt() -> T:
            try:
                return fn(self._client())
            except SalesforceExpiredSession:
                if self.settings.auth_method == "session":
                    raise ConfigError(
                        f"Salesforce {action}: the session id is expired or invalid; put a fresh "
                        "session_id in the config (or use a password or JWT login)"
                    ) from None
            log.info("Salesforce session expired: logging in again")
            self._login()
            try:
                return fn(self._client())
            except SalesforceExpiredSession:
                raise ConfigError(
                    f"Salesforce {action}: session expired and re-login failed "
                    "(the new session was refused too)"
                ) from None

        return call_with_retry(lambda: self._guarded(action, attempt))

    def _query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a query, page by page (each page retried on its own)."""
        size = self.settings.page_size
        headers = {"Sforce-Query-Options": f"batchSize={size}"} if size else {}
        page = self._call("query", lambda sf: sf.query(soql, headers=headers))
        while True:
            yield from page["records"]
            if page.get("done", True):
                return
            more = partial(_query_more, url=page["nextRecordsUrl"], headers=headers)
            page = self._call("query (next page)", more)

    # -- describe --------------------------------------------------------------------------
    def _describe(self, obj: str) -> dict[str, dict[str, Any]]:
        if obj not in self._described:
            if not _NAME.match(obj):
                raise ConfigError(f"{obj!r} is not a Salesforce object name")
            self._start()
            body = self._call(f"describe {obj}", lambda sf: getattr(sf, obj).describe())
            self._described[obj] = {f["name"]: f for f in body["fields"]}
        return self._described[obj]

    def currency_rates(self) -> list[CurrencyRate]:
        """The org's dated conversion rates (advanced currency management), if it has them."""
        if "CurrencyIsoCode" not in self._describe("Opportunity"):
            return []
        soql = "SELECT IsoCode, ConversionRate, StartDate, NextStartDate FROM DatedConversionRate"
        try:
            rows = list(self._query(soql))
        except ClosedloopError as exc:  # multi-currency without dated rates
            log.info("no dated conversion rates: %s", exc)
            return []
        return [
            CurrencyRate(r["IsoCode"], float(r["ConversionRate"]),
                         date.fromisoformat(r["StartDate"]), date.fromisoformat(r["NextStartDate"]))
            for r in rows
        ]  # fmt: skip

    def _field_name(self, obj: str, name: str) -> str | None:
        """The describe's spelling of ``name`` (field names are case-insensitive)."""
        described = self._describe(obj)
        if name in described:
            return name
        return next((n for n in described if n.lower() == name.lower()), None)

    def describe_fields(self, obj: str) -> dict[str, FieldSpec]:
        specs = {}
        for name, raw in self._describe(obj).items():
            active = tuple(p["value"] for p in raw.get("picklistValues") or [] if p.get("active"))
            specs[name] = FieldSpec(
                name=name,
                type=FIELD_TYPES.get(raw["type"], "string"),
                updateable=bool(raw.get("updateable")),
                length=raw.get("length") or None,
                picklist=active if raw["type"] in {"picklist", "multipicklist"} else None,
                restricted=bool(raw.get("restrictedPicklist")),
                label=raw.get("label", ""),
            )
        return specs

    def create_fields(self, obj: str, fields: Sequence[FieldSpec], group: str) -> None:
        names = ", ".join(f"{f.name} ({f.type})" for f in fields)
        raise ConfigError(
            f"Salesforce {obj} lacks the fields {names}. closedloop does not create Salesforce "
            "fields: ask an admin to create them (Setup > Object Manager > "
            f"{obj} > Fields & Relationships, or a metadata deploy) and give the integration "
            "user edit access, then run again."
        )

    # -- reads -----------------------------------------------------------------------------
    def contacts(self, since: datetime | None, properties: Sequence[str]) -> Iterator[CrmRecord]:
        self._start()
        for obj in self.person_objects:
            names = {p: self._field_name(obj, p) for p in properties}
            extra = ["IsConverted", "ConvertedContactId"] if obj == "Lead" else ["AccountId"]
            fields = list(
                dict.fromkeys(
                    [
                        "Id",
                        "CreatedDate",
                        "SystemModstamp",
                        *extra,
                        *(n for n in names.values() if n),
                    ]
                )
            )
            where = f" WHERE SystemModstamp >= {soql_datetime(since)}" if since else ""
            soql = f"SELECT {', '.join(fields)} FROM {obj}{where} ORDER BY SystemModstamp, Id"
            for row in self._query(soql):
                converted = obj == "Lead" and row.get("IsConverted")
                yield CrmRecord(
                    object=obj,
                    crm_id=row["Id"],
                    created_at=parse_datetime(row["CreatedDate"]),
                    updated_at=parse_datetime(row["SystemModstamp"]),
                    properties={p: _text(row.get(n)) if n else None for p, n in names.items()},
                    account_id=row.get("AccountId"),
                    merged_into=row.get("ConvertedContactId") if converted else None,
                )

    def deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        self._start()
        fields = [
            "Id",
            "Name",
            "Amount",
            "StageName",
            "IsWon",
            "IsClosed",
            "CloseDate",
            "CreatedDate",
            "SystemModstamp",
            "AccountId",
        ]
        if "CurrencyIsoCode" in self._describe("Opportunity"):
            fields.append("CurrencyIsoCode")
        where = f" WHERE SystemModstamp >= {soql_datetime(since)}" if since else ""
        soql = f"SELECT {', '.join(fields)} FROM Opportunity{where} ORDER BY SystemModstamp, Id"
        batch: list[dict[str, Any]] = []
        for row in self._query(soql):
            batch.append(row)
            if len(batch) >= ROLE_BATCH:
                yield from self._with_buyers(batch)
                batch = []
        yield from self._with_buyers(batch)

    def _with_buyers(self, rows: list[dict[str, Any]]) -> Iterator[CrmDeal]:
        buyers = self._contact_roles([row["Id"] for row in rows]) if rows else {}
        for row in rows:
            closed = bool(row["IsClosed"]) and row.get("CloseDate")
            yield CrmDeal(
                object="Opportunity",
                crm_id=row["Id"],
                name=row.get("Name") or "",
                amount=float(row["Amount"]) if row.get("Amount") is not None else None,
                currency=row.get("CurrencyIsoCode"),
                stage=row.get("StageName") or "",
                is_won=bool(row["IsWon"]),
                is_closed=bool(row["IsClosed"]),
                created_at=parse_datetime(row["CreatedDate"]),
                updated_at=parse_datetime(row["SystemModstamp"]),
                closed_at=start_of_day(date.fromisoformat(row["CloseDate"])) if closed else None,
                contact_ids=tuple(buyers.get(row["Id"], ())),
                account_id=row.get("AccountId"),
            )

    def _contact_roles(self, opportunity_ids: list[str]) -> dict[str, list[str]]:
        """Opportunity Id -> contact Ids (primary first), per the contact_roles setting."""
        primary_only = self.settings.contact_roles == "primary"
        head = "SELECT OpportunityId, ContactId, IsPrimary FROM OpportunityContactRole WHERE "
        tail = (" AND IsPrimary = TRUE" if primary_only else "") + " ORDER BY OpportunityId, Id"
        roles: dict[str, list[tuple[bool, str]]] = {}
        for chunk in _in_chunks(opportunity_ids, head + "OpportunityId IN ()" + tail):
            ids = ", ".join(soql_quote(i) for i in chunk)
            for row in self._query(f"{head}OpportunityId IN ({ids}){tail}"):
                if row.get("ContactId"):
                    roles.setdefault(row["OpportunityId"], []).append(
                        (not row["IsPrimary"], row["ContactId"])
                    )
        return {
            opp: list(dict.fromkeys(contact for _, contact in sorted(found, key=lambda r: r[0])))
            for opp, found in roles.items()
        }

    def read_values(
        self, obj: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        self._start()
        names = {f: self._field_name(obj, f) for f in fields}
        columns = list(dict.fromkeys(["Id", *(n for n in names.values() if n)]))
        head = f"SELECT {', '.join(columns)} FROM {obj} WHERE Id IN ("
        by_prefix = {i[:15]: i for i in ids}  # the API answers with 18-character Ids
        out: dict[str, dict[str, str | None]] = {}
        for chunk in _in_chunks(list(dict.fromkeys(ids)), head + ")"):
            soql = head + ", ".join(soql_quote(i) for i in chunk) + ")"
            for row in self._query(soql):
                key = by_prefix.get(row["Id"][:15], row["Id"])
                out[key] = {f: _text(row.get(n)) if n else None for f, n in names.items()}
        return out

    # -- writes ----------------------------------------------------------------------------
    def write(
        self,
        obj: str,
        updates: Sequence[RecordUpdate],
        on_batch: Callable[[list[WriteResult]], None] | None = None,
    ) -> list[WriteResult]:
        """Write the updates; per-record results in input order; ``on_batch`` after each call."""
        if not updates:
            return []
        self._start()
        described = self._describe(obj)
        canonical = {
            name: self._field_name(obj, name) or name
            for update in updates
            for name in update.values
        }
        report = on_batch or (lambda results: None)
        results: dict[str, WriteResult] = {}
        prepared: list[tuple[str, dict[str, Any]]] = []
        rejected: list[WriteResult] = []
        for update in updates:
            try:
                prepared.append(
                    (
                        update.crm_id,
                        {
                            canonical[name]: _wire_value(
                                described.get(canonical[name]), name, value
                            )
                            for name, value in update.values.items()
                        },
                    )
                )
            except ValueError as exc:
                rejected.append(WriteResult(update.crm_id, False, str(exc)))
        if rejected:
            results.update((r.crm_id, r) for r in rejected)
            report(rejected)
        if len(prepared) > self.settings.bulk_threshold:
            for job_rows in _chunks(prepared, BULK_JOB_ROWS):
                batch = self._bulk_update(obj, job_rows)
                results.update((r.crm_id, r) for r in batch)
                report(batch)
        else:
            for chunk in _chunks(prepared, COLLECTION_SIZE):
                batch = self._collection_update(obj, chunk)
                results.update((r.crm_id, r) for r in batch)
                report(batch)
        return [results[u.crm_id] for u in dict((u.crm_id, u) for u in updates).values()]

    def _collection_update(
        self, obj: str, chunk: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[WriteResult]:
        payload = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": obj}, "id": rid, **values} for rid, values in chunk
            ],
        }
        answer = self._call(
            f"update of {len(chunk)} {obj} records",
            lambda sf: sf.restful("composite/sobjects", method="PATCH", json=payload),
        )
        return [
            WriteResult(rid, bool(item.get("success")), _save_error(item))
            for (rid, _), item in zip(chunk, answer or [], strict=True)
        ]

    def _bulk_update(
        self, obj: str, rows: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[WriteResult]:
        """One Bulk API 2.0 update job, polled here (a transient poll failure is retried)."""
        columns = sorted({name for _, values in rows for name in values})
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["Id", *columns])
        for rid, values in rows:
            writer.writerow([rid, *(_csv_cell(values, c) for c in columns)])

        def jobs(sf: Salesforce) -> Any:
            return getattr(sf.bulk2, obj)

        job = self._call(
            "create bulk job", lambda sf: jobs(sf)._client.create_job(Operation.update)
        )
        job_id = job["id"]
        self._call(
            "upload bulk data", lambda sf: jobs(sf)._client.upload_job_data(job_id, out.getvalue())
        )
        self._call("close bulk job", lambda sf: jobs(sf)._client.close_job(job_id))
        deadline = time.monotonic() + self.settings.bulk_timeout
        while True:
            info = self._call("poll bulk job", lambda sf: jobs(sf)._client.get_job(job_id, False))
            if info["state"] in {"JobComplete", "Failed", "Aborted"}:
                break
            if time.monotonic() > deadline:
                return [
                    WriteResult(
                        rid,
                        False,
                        f"bulk job {job_id} still {info['state']} after "
                        f"{self.settings.bulk_timeout:.0f} s; outcome unknown",
                    )
                    for rid, _ in rows
                ]
            time.sleep(self.settings.bulk_poll_interval)
        if info["state"] != "JobComplete":
            error = f"bulk job {job_id} {info['state']}: {info.get('errorMessage', '')}".strip()
            return [WriteResult(rid, False, error) for rid, _ in rows]
        failed: dict[str, str] = {}
        if int(info.get("numberRecordsFailed", 0)):
            text = self._call(
                "read failed bulk rows", lambda sf: jobs(sf).get_failed_records(job_id)
            )
            failed = {
                r.get("Id") or r["sf__Id"]: _bulk_error(r["sf__Error"])
                for r in csv.DictReader(io.StringIO(text))
            }
        succeeded: set[str] | None = None
        if int(info.get("numberRecordsProcessed", 0)) < len(rows):
            text = self._call(
                "read bulk results", lambda sf: jobs(sf).get_successful_records(job_id)
            )
            succeeded = {r.get("Id") or r["sf__Id"] for r in csv.DictReader(io.StringIO(text))}
        return [
            WriteResult(rid, False, failed[rid])
            if rid in failed
            else WriteResult(rid, True)
            if succeeded is None or rid in succeeded
            else WriteResult(rid, False, f"bulk job {job_id} did not process this record")
            for rid, _ in rows
        ]


def _query_more(sf: Salesforce, url: str, headers: dict[str, str]) -> Any:
    return sf.query_more(url, identifier_is_url=True, headers=headers)


def _wire_value(spec: dict[str, Any] | None, name: str, value: str | None) -> Any:
    """The JSON value Salesforce expects for the field (numbers as numbers; '' clears)."""
    if value is None or value == "":
        return None
    kind = spec["type"] if spec else "string"
    if kind in {"double", "currency", "percent", "int", "long"}:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{name}: {value!r} is not a finite number")
        if kind in {"int", "long"}:
            if not number.is_integer():
                raise ValueError(f"{name}: {value!r} is not a whole number")
            return int(number)
        return number
    if kind == "boolean":
        lowered = value.strip().lower()
        if lowered not in {"true", "false"}:
            raise ValueError(f"{name}: {value!r} is not true/false")
        return lowered == "true"
    try:
        if kind == "date":
            return (
                date.fromisoformat(value) if len(value) == 10 else parse_datetime(value).date()
            ).isoformat()
        if kind == "datetime":
            return iso_z(parse_datetime(value))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a {kind}") from None
    return value


def _csv_cell(values: dict[str, Any], column: str) -> str:
    """Bulk CSV: an empty cell leaves a field alone, ``#N/A`` clears it."""
    if column not in values:
        return ""
    value = values[column]
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
