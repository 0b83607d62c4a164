"""The connection to one org: login flows, the metered HTTP session, the API budget, and the
one table from simple-salesforce's exceptions to closedloop's.

Every request goes through :class:`_MeteredSession` (budget check, ``closedloop_api_calls``,
the ``Sforce-Limit-Info`` header) and :meth:`SalesforceConnection.call` (classification,
retries, one re-login when a login flow's session expired).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import jwt
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceBulkV2LoadError,
    SalesforceError,
    SalesforceExpiredSession,
)
from simple_salesforce.login import SalesforceLogin

from adapters._http import retry_after_header
from adapters.salesforce.settings import SalesforceSettings
from connector.kernel import metrics
from connector.kernel.errors import BudgetExhausted, ClosedloopError, ConfigError, TransientError
from connector.kernel.retry import call_with_retry

log = logging.getLogger(__name__)
T = TypeVar("T")

SYSTEM = "salesforce"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


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


class SalesforceConnection:
    """One org's session: connects on first use, re-logs in once, counts every request."""

    def __init__(self, settings: SalesforceSettings) -> None:
        self.settings = settings
        self._budget = _ApiBudget(settings.api_budget_share)
        self._session = _MeteredSession(self._budget, settings.timeout)
        self._session.verify = settings.verify_tls
        self._sf: Salesforce | None = None
        self._limits_read = False

    def api_calls(self) -> int:
        """HTTP requests sent (logins included)."""
        return self._budget.sent

    def close(self) -> None:
        self._session.close()

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

    def start(self) -> None:
        """First use: connect, then learn the org's daily limit for the budget."""
        if not self._limits_read:
            limits = self.call("read API limits", lambda sf: sf.limits())
            daily = limits["DailyApiRequests"]
            self._budget.start(int(daily["Max"]), int(daily["Remaining"]))
            self._limits_read = True

    # -- calls -----------------------------------------------------------------------------
    def guarded(self, action: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ClosedloopError:
            raise
        except Exception as exc:
            error = classify(exc, action, self._session.last_retry_after)
            if error is None:
                raise
            raise error from exc

    def call(self, action: str, fn: Callable[[Salesforce], T]) -> T:
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

        return call_with_retry(lambda: self.guarded(action, attempt))

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a query, page by page (each page retried on its own)."""
        size = self.settings.page_size
        headers = {"Sforce-Query-Options": f"batchSize={size}"} if size else {}
        page = self.call("query", lambda sf: sf.query(soql, headers=headers))
        while True:
            yield from page["records"]
            if page.get("done", True):
                return
            more = partial(_query_more, url=page["nextRecordsUrl"], headers=headers)
            page = self.call("query (next page)", more)


def _query_more(sf: Salesforce, url: str, headers: dict[str, str]) -> Any:
    return sf.query_more(url, identifier_is_url=True, headers=headers)
