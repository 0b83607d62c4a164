"""The HTTP helper of the REST sources with no usable official client (Google Ads, LinkedIn).

Every request goes: rate limiter -> ``requests`` (counted in ``closedloop_api_calls``) -> the
response classified once -> :func:`connector.kernel.retry.call_with_retry`.

    connection error, timeout, 429, 5xx, vendor "transient"  -> TransientError(retry_after)
    401, 403                                                  -> ConfigError (with the auth hint)
    any other 4xx                                             -> RequestRejected, a ConfigError
                                                                 (the vendor's message)

Each vendor supplies an :data:`ErrorReader` that turns its error body into a :class:`VendorError`
(message, retry delay, transient flag). Credentials travel in headers only, and no message built
here quotes a header, so secrets never reach an exception or a log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from connector.kernel import metrics
from connector.kernel.errors import ClosedloopError, ConfigError, TransientError
from connector.kernel.ratelimit import RateLimiter
from connector.kernel.retry import call_with_retry
from connector.kernel.timeutil import utcnow


@dataclass(frozen=True)
class VendorError:
    """What a vendor's error body says, in the terms the classifier needs."""

    message: str
    retry_after: float | None = None
    transient: bool = False


ErrorReader = Callable[[requests.Response], VendorError]


class RequestRejected(ConfigError):
    """The API refused the request as such (a 4xx other than 401/403). ``status`` and the
    vendor's ``detail`` let a caller that sends many records at once (conversion uploads) find
    the ones at fault."""

    def __init__(self, message: str, status: int, detail: str) -> None:
        super().__init__(message)
        self.status, self.detail = status, detail


def retry_after_header(response: requests.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError):
        return None


def classify(
    system: str, response: requests.Response, detail: VendorError, auth_hint: str
) -> ClosedloopError:
    """The one table from an HTTP failure to closedloop's error kinds."""
    status = response.status_code
    if detail.transient or status == 429 or status >= 500:
        retry_after = (
            detail.retry_after if detail.retry_after is not None else retry_after_header(response)
        )
        return TransientError(f"{system}: HTTP {status}: {detail.message}", retry_after=retry_after)
    if status in (401, 403):
        return ConfigError(
            f"{system}: not authorised (HTTP {status}): {detail.message}. {auth_hint}"
        )
    return RequestRejected(
        f"{system}: request rejected (HTTP {status}): {detail.message}", status, detail.message
    )


class JsonApi:
    """A JSON-over-HTTP API: one session, counted and rate-limited calls, classified errors.

    The session opens on first use; :meth:`close` releases its sockets (the adapters call it at
    the end of each stream) and the next call opens a new one.
    """

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        headers: Callable[[], Mapping[str, str]],
        read_error: ErrorReader,
        limiter: RateLimiter,
        auth_hint: str,
        timeout: float = 60.0,
    ) -> None:
        self.system = system
        self.base_url = base_url.rstrip("/")
        self.calls = 0
        self._headers = headers
        self._read_error = read_error
        self._limiter = limiter
        self._auth_hint = auth_hint
        self._timeout = timeout
        self._session: requests.Session | None = None

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        authorised: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send with retries and return the decoded JSON body.

        ``path`` is relative to the base URL (query strings already encoded are kept as they
        are) or an absolute URL. ``authorised=False`` leaves out the credential headers;
        ``headers`` are added to this request's (``X-RestLi-Method: BATCH_CREATE``).
        """
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        extra = dict(headers or {})
        return call_with_retry(
            lambda: self._send(method, url, params, json, data, authorised, extra)
        )

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        json: Any,
        data: Mapping[str, str] | None,
        authorised: bool,
        extra: dict[str, str],
    ) -> Any:
        if self._session is None:
            self._session = requests.Session()
        headers = {**(self._headers() if authorised else {}), **extra}
        self._limiter.acquire()
        self.calls += 1
        metrics.API_CALLS.labels(self.system).inc()
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers,
                timeout=self._timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(
                f"{self.system}: {type(exc).__name__} talking to {self.base_url}"
            ) from exc
        if response.ok:
            try:
                return response.json()
            except ValueError as exc:
                raise TransientError(f"{self.system}: truncated or non-JSON response") from exc
        raise classify(self.system, response, self._read_error(response), self._auth_hint)


def json_body(response: requests.Response) -> Any:
    """The error body as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
