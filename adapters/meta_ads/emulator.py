"""A wire-faithful Meta Marketing API (Graph API) emulator: ad account insights and the
Conversions API.

Serves ``GET /{version}/act_{id}/insights`` with the parameters ``facebook-business`` sends
(``access_token``, ``level``, ``time_increment``, ``time_range`` as JSON, ``fields``, ``limit``,
``after``): one row per campaign and day, numbers as strings, cursor paging
(``paging.cursors.after`` plus ``paging.next`` while rows remain, default ``limit`` 25).

Serves ``GET /{version}/{pixel_id}?fields=id,name`` (the pixel, or 100/33 for an unknown one)
and ``POST /{version}/{pixel_or_dataset_id}/events`` (Conversions API) as
``EventRequest(...).execute()`` / ``AdsPixel(id).create_event(...)`` send it: a form with
``data`` (a JSON array of events, each an object or a JSON-encoded object), ``access_token``
(query or form), optional ``test_event_code`` and ``partner_agent``; a JSON body works too. It
answers ``{"events_received": N, "messages": [], "fbtrace_id": ...}``. At most 1,000 events;
one invalid event rejects the whole request with code 100 ``Invalid parameter``, an
``error_subcode``, ``error_user_title`` and ``error_user_msg``: missing ``event_name``, an
``event_time`` older than 7 days (62 for ``physical_store``; subcode 2804003 "Event Timestamp
Too Old") or in the future, an unknown ``action_source``, ``user_data`` without a customer
information parameter (2804050), ``em``/``ph`` not SHA-256 hex, a malformed ``fbc``
(``fb.1.<ms>.<fbclid>``) or ``lead_id`` (2804036), a non-numeric ``custom_data.value`` or one
without ``currency``. Seed pixels with :meth:`Emulator.add_pixel`; an unknown one answers
GraphMethodException 100/33 "Unsupported post request...". Live events are deduplicated per
pixel on ``event_name`` + ``event_id`` within 48 hours (``pixels[id].stats``: received vs
deduplicated; ``server_events``: each counted once); events with ``test_event_code`` go to
``test_events`` and are not counted as live.

Errors use the Graph error object: code 190 ``OAuthException`` for a bad token (HTTP 400),
100 for a bad parameter or unknown object, throttling code 80000 (``is_transient``) with the
``X-Business-Use-Case-Usage`` header carrying ``estimated_time_to_regain_access`` (minutes) on
insights and the app-level code 4 with ``X-App-Usage`` on ``/events``, codes 1 and 2 for server
errors.

Reference: https://developers.facebook.com/docs/marketing-api/insights,
https://developers.facebook.com/docs/graph-api/overview/rate-limiting#ads-insights,
https://developers.facebook.com/docs/marketing-api/conversions-api/using-the-api and
https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from adapters._emulator import EmulatorServer, Request, Response, route
from connector.kernel.timeutil import utcnow

SAMPLE_TODAY = date(2026, 11, 20)
SAMPLE_PIXEL = "1234567890123456"
INSIGHT_FIELDS = {
    "campaign_id",
    "campaign_name",
    "spend",
    "clicks",
    "impressions",
    "account_currency",
    "account_id",
    "date_start",
    "date_stop",
}
DEFAULT_LIMIT = 25

# -- Conversions API -----------------------------------------------------------------------------
MAX_EVENTS = 1000  # "You can send up to 1,000 events in data"
MAX_EVENT_AGE = timedelta(days=7)
MAX_STORE_EVENT_AGE = timedelta(days=62)  # action_source physical_store
FUTURE_TOLERANCE = timedelta(minutes=10)  # clock skew allowed for event_time
DEDUP_WINDOW = timedelta(hours=48)  # same event_name + event_id within 48 hours counts once
ACTION_SOURCES = {
    "email",
    "website",
    "app",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
}
# Customer information parameters; an event needs at least one (or an IP with a user agent).
IDENTIFIERS = {
    "em",
    "ph",
    "external_id",
    "fbc",
    "fbp",
    "lead_id",
    "madid",
    "anon_id",
    "subscription_id",
    "fb_login_id",
    "ctwa_clid",
    "page_scoped_user_id",
}
HASHED = {"em", "ph", "fn", "ln", "db", "ge", "ct", "st", "zp", "country"}
SUBCODE_INVALID = 2804019  # an invalid event parameter
SUBCODE_TOO_OLD = 2804003  # event_time beyond the 7-day window
SUBCODE_INVALID_LEAD_ID = 2804036
SUBCODE_NO_USER_DATA = 2804050  # too little customer information to match
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_FBC = re.compile(r"^fb\.[0-2]\.\d{13}\.\S+$")  # fb.<subdomain index>.<ms>.<fbclid>
_LEAD_ID = re.compile(r"^\d{15,17}$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


@dataclass
class ServerEvent:
    """One event received by a pixel (dataset), as sent."""

    pixel_id: str
    event_name: str
    event_time: int
    event_id: str | None
    action_source: str
    user_data: dict[str, Any]
    custom_data: dict[str, Any]
    received_at: datetime
    test_event_code: str | None = None
    partner_agent: str | None = None

    @property
    def value(self) -> float | None:
        raw = self.custom_data.get("value")
        return None if raw is None else float(raw)


@dataclass
class PixelStats:
    received: int = 0  # live events received, duplicates included
    deduplicated: int = 0  # of those, dropped as repeats of an earlier event_name + event_id


@dataclass
class Pixel:
    id: str
    name: str
    stats: PixelStats = field(default_factory=PixelStats)


@dataclass
class Daily:
    spend: float
    clicks: int
    impressions: int


def _trace_id() -> str:
    return "A" + secrets.token_urlsafe(16)


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode().rstrip("=")


def _uncursor(token: str) -> int:
    return int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())


class GraphError(Exception):
    def __init__(
        self,
        code: int,
        message: str,
        subcode: int | None = None,
        user_title: str = "",
        user_msg: str = "",
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode = code, message, subcode
        self.user_title, self.user_msg = user_title, user_msg


def _invalid(title: str, msg: str, subcode: int = SUBCODE_INVALID) -> GraphError:
    """A Conversions API event error: one bad event rejects the whole request."""
    return GraphError(100, "Invalid parameter", subcode, title, msg)


def _form(req: Request) -> dict[str, Any]:
    """The POST parameters: a form (what facebook-business sends) or a JSON object."""
    if not req.body:
        return {}
    if req.headers.get("content-type", "").startswith("application/json"):
        body = json.loads(req.body)
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        return body
    return {k: v[0] for k, v in parse_qs(req.body.decode(), keep_blank_values=True).items()}


class Emulator(EmulatorServer):
    """Meta Ads: one ad account's campaigns and their daily insights."""

    name = "meta_ads"

    def __init__(
        self,
        account_id: str = "act_1234567890",
        *,
        currency: str = "USD",
        access_token: str = "EAAB-emulator-token",
        regain_minutes: int = 1,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        super().__init__(rate_limit=rate_limit)
        self.account_id = account_id
        self.currency = currency
        self.access_token = access_token
        self.invalid_token_status = 400  # the Graph API answers OAuthException 190 with a 400
        self.regain_minutes = regain_minutes
        self.campaigns: dict[str, str] = {}
        self.daily: dict[tuple[str, date], Daily] = {}
        self.pixels: dict[str, Pixel] = {}
        self.server_events: list[ServerEvent] = []  # live events, each counted once
        self.test_events: list[ServerEvent] = []  # sent with test_event_code
        self._last_seen: dict[tuple[str, str, str], datetime] = {}  # dedup key -> received

    # -- seeding ---------------------------------------------------------------------------
    def add_campaign(self, id: str | int, name: str) -> None:
        self.campaigns[str(id)] = name

    def add_daily(
        self, campaign_id: str | int, day: date, spend: float, clicks: int, impressions: int
    ) -> None:
        """Set (or restate) one campaign-day."""
        self.daily[(str(campaign_id), day)] = Daily(spend, clicks, impressions)

    def add_pixel(self, id: str | int, name: str = "") -> Pixel:
        """A pixel (dataset) that accepts Conversions API events at ``/{version}/{id}/events``."""
        pixel = Pixel(str(id), name or f"Pixel {id}")
        with self._lock:
            self.pixels[pixel.id] = pixel
        return pixel

    def events_for(self, pixel_id: str | int) -> list[ServerEvent]:
        """The live (non-test) events a pixel counts, duplicates dropped."""
        with self._lock:
            return [e for e in self.server_events if e.pixel_id == str(pixel_id)]

    def seed_sample(self) -> None:
        """Three campaigns, each with ten days of spend in the 30 days before 2026-11-20, and
        one pixel for Conversions API events."""
        self.add_pixel(SAMPLE_PIXEL, "closedloop CRM events")
        names = {
            "23850000000000001": "Prospecting - Lookalike",
            "23850000000000002": "Retargeting - Site visitors",
            "23850000000000003": "Webinar promo",
        }
        for cid, name in names.items():
            self.add_campaign(cid, name)
        for offset in range(1, 31):
            cid = list(names)[offset % 3]
            self.add_daily(
                cid,
                SAMPLE_TODAY - timedelta(days=offset),
                spend=25 + offset * 0.75,
                clicks=30 + offset,
                impressions=2000 + 25 * offset,
            )

    def adapter_settings(self, *, valid_token: bool = True) -> dict[str, Any]:
        return {
            "ad_account_id": self.account_id,
            "access_token": self.access_token if valid_token else "EAAB-invalid-token",
            "endpoint": self.url,
            "pixel_id": next(iter(self.pixels), None),  # where Conversions API events go
        }

    # -- errors ----------------------------------------------------------------------------
    def _error(
        self,
        status: int,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        transient: bool = False,
        headers: dict[str, str] | None = None,
        error_type: str = "OAuthException",
        user_title: str = "",
        user_msg: str = "",
    ) -> Response:
        error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
        if subcode is not None:
            error["error_subcode"] = subcode
        if transient:
            error["is_transient"] = True
        if user_title:
            error["is_transient"] = transient
            error["error_user_title"] = user_title
            error["error_user_msg"] = user_msg
        error["fbtrace_id"] = _trace_id()
        return Response(status, {"error": error}, headers or {})

    def _usage_header(self, call_count: int, regain: int) -> dict[str, str]:
        account = self.account_id.removeprefix("act_")
        usage = {
            account: [
                {
                    "type": "ads_insights",
                    "call_count": call_count,
                    "total_cputime": min(call_count, 100),
                    "total_time": min(call_count, 100),
                    "estimated_time_to_regain_access": regain,
                }
            ]
        }
        return {"X-Business-Use-Case-Usage": json.dumps(usage)}

    def check_auth(self, req: Request) -> Response | None:
        try:
            token = req.arg("access_token") or _form(req).get("access_token")
        except ValueError:
            token = req.arg("access_token")
        if not token:
            return self._error(400, 104, "An access token is required to request this resource.")
        if token != self.access_token:
            return self._error(
                self.invalid_token_status,
                190,
                "Invalid OAuth access token - Cannot parse access token",
            )
        return None

    def rate_limited_response(self, req: Request) -> Response:
        if req.path.endswith("/events"):
            # A pixel is not an ad account: posting events counts against the app's platform
            # rate limit (code 4, usage in X-App-Usage), not the ad account's insights budget.
            usage = {"call_count": 100, "total_cputime": 100, "total_time": 100}
            return self._error(
                400,
                4,
                "(#4) Application request limit reached",
                transient=True,
                headers={"X-App-Usage": json.dumps(usage)},
            )
        return self._error(
            400,
            80000,
            "(#80000) There have been too many calls from this ad-account. Wait a bit and try "
            "again. For more info, please refer to "
            "https://developers.facebook.com/docs/graph-api/overview/rate-limiting#ads-insights.",
            subcode=2446079,
            transient=True,
            headers=self._usage_header(100, self.regain_minutes),
        )

    def server_error_response(self, req: Request, status: int) -> Response:
        if status == 500:
            return self._error(500, 1, "An unknown error occurred", subcode=99, transient=True)
        return self._error(status, 2, "Service temporarily unavailable", transient=True)

    def not_found_response(self, req: Request) -> Response:
        return self._error(400, 2500, f"Unknown path components: {req.path}")

    # -- routes ----------------------------------------------------------------------------
    @route("GET", r"/(?P<version>v\d+\.\d+)/(?P<account>act_\d+)/insights")
    def insights(self, req: Request) -> Response:
        if req.params["account"] != self.account_id:
            return self._error(
                400,
                100,
                f"Unsupported get request. Object with ID '{req.params['account']}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support this "
                "operation.",
                subcode=33,
            )
        try:
            rows = self._rows(req)
            limit = int(req.arg("limit") or DEFAULT_LIMIT)
            start = _uncursor(req.arg("after", "") or "") + 1 if req.arg("after") else 0
        except GraphError as exc:
            return self._error(400, exc.code, exc.message, subcode=exc.subcode)
        except ValueError:
            return self._error(400, 100, "(#100) Invalid parameter")
        page = rows[start : start + max(1, min(limit, 5000))]
        body: dict[str, Any] = {"data": page}
        if page:
            last = start + len(page) - 1
            body["paging"] = {"cursors": {"before": _cursor(start), "after": _cursor(last)}}
            if last + 1 < len(rows):
                query = {k: v[0] for k, v in req.query.items()}
                query["after"] = _cursor(last)
                body["paging"]["next"] = f"{self.url}{req.path}?{urlencode(query)}"
        used = len(self._recent) * 100 // self.rate_limit[0] if self.rate_limit else 1
        return Response(200, body, self._usage_header(used, 0))

    @route("GET", r"/(?P<version>v\d+\.\d+)/(?P<pixel>\d+)")
    def pixel(self, req: Request) -> Response:
        """``AdsPixel(id).api_get(fields=[...])``: the pixel's id, name and creation time."""
        pixel = self.pixels.get(req.params["pixel"])
        if pixel is None:
            return self._error(
                400,
                100,
                f"Unsupported get request. Object with ID '{req.params['pixel']}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support this "
                "operation. Please read the Graph API documentation at "
                "https://developers.facebook.com/docs/graph-api",
                subcode=33,
                error_type="GraphMethodException",
            )
        values = {
            "id": pixel.id,
            "name": pixel.name,
            "creation_time": "2026-01-05T09:00:00+0000",
            "is_unavailable": False,
            "data_use_setting": "ADVERTISING_AND_ANALYTICS",
        }
        fields = [f for f in (req.arg("fields") or "id").split(",") if f]
        unknown = [f for f in fields if f not in values]
        if unknown:
            return self._error(
                400,
                100,
                f"(#100) Tried accessing nonexisting field ({unknown[0]}) on node type (AdsPixel)",
            )
        return Response(200, {"id": pixel.id} | {f: values[f] for f in fields})

    @route("POST", r"/(?P<version>v\d+\.\d+)/(?P<pixel>\d+)/events")
    def events(self, req: Request) -> Response:
        pixel = self.pixels.get(req.params["pixel"])
        if pixel is None:
            return self._error(
                400,
                100,
                f"Unsupported post request. Object with ID '{req.params['pixel']}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support this "
                "operation. Please read the Graph API documentation at "
                "https://developers.facebook.com/docs/graph-api",
                subcode=33,
                error_type="GraphMethodException",
            )
        try:
            form = _form(req)
            events = [self._event(pixel.id, raw, form) for raw in _event_list(form)]
        except GraphError as exc:
            return self._error(
                400,
                exc.code,
                exc.message,
                subcode=exc.subcode,
                user_title=exc.user_title,
                user_msg=exc.user_msg,
            )
        except ValueError:
            return self._error(400, 100, "(#100) Param data must be an array.")
        with self._lock:
            for event in events:
                self._record(pixel, event)
        return Response(
            200, {"events_received": len(events), "messages": [], "fbtrace_id": _trace_id()}
        )

    def _record(self, pixel: Pixel, event: ServerEvent) -> None:
        """Keep a test event apart; count a live one once per event_name + event_id. Called
        under the lock."""
        if event.test_event_code:
            self.test_events.append(event)
            return
        pixel.stats.received += 1
        if event.event_id:
            key = (pixel.id, event.event_name, event.event_id)
            seen = self._last_seen.get(key)
            if seen is not None and event.received_at - seen <= DEDUP_WINDOW:
                pixel.stats.deduplicated += 1
                return
            self._last_seen[key] = event.received_at
        self.server_events.append(event)

    def _event(self, pixel_id: str, raw: Any, form: dict[str, Any]) -> ServerEvent:
        """Validate one server event as the Conversions API does (any error fails the request)."""
        if not isinstance(raw, dict):
            raise ValueError("an event must be an object")
        name = raw.get("event_name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("Missing event_name", "The parameter event_name is required.")
        event_time = _event_time(raw)
        source = raw.get("action_source")
        if source not in ACTION_SOURCES:
            raise _invalid(
                "Invalid action_source",
                f"action_source must be one of {', '.join(sorted(ACTION_SOURCES))}.",
            )
        if source == "website" and not raw.get("event_source_url"):
            raise _invalid("Missing event_source_url", "Website events need event_source_url.")
        now = utcnow()
        age = now - datetime.fromtimestamp(event_time, tz=now.tzinfo)
        if age > (MAX_STORE_EVENT_AGE if source == "physical_store" else MAX_EVENT_AGE):
            raise _invalid(
                "Event Timestamp Too Old",
                "The timestamp for this event is too far in the past. Events need to be sent "
                "from your server within 7 days of when they occurred. Enter a timestamp that "
                "has occurred within the last 7 days.",
                SUBCODE_TOO_OLD,
            )
        if -age > FUTURE_TOLERANCE:
            raise _invalid("Event Timestamp In Future", "event_time must not be in the future.")
        user_data = _user_data(raw.get("user_data"), source)
        custom_data = _custom_data(raw.get("custom_data"), name)
        event_id = raw.get("event_id")
        return ServerEvent(
            pixel_id=pixel_id,
            event_name=name,
            event_time=event_time,
            event_id=str(event_id) if event_id not in (None, "") else None,
            action_source=source,
            user_data=user_data,
            custom_data=custom_data,
            received_at=now,
            test_event_code=form.get("test_event_code") or None,
            partner_agent=form.get("partner_agent") or None,
        )

    def _rows(self, req: Request) -> list[dict[str, Any]]:
        if (req.arg("level") or "campaign") != "campaign":
            raise GraphError(100, "(#100) level: this emulator serves level=campaign only")
        if req.arg("time_increment", "1") != "1":
            raise GraphError(100, "(#100) time_increment: this emulator serves daily rows only")
        fields = [f for f in (req.arg("fields") or "spend").split(",") if f]
        unknown = [f for f in fields if f not in INSIGHT_FIELDS]
        if unknown:
            raise GraphError(
                100,
                f"(#100) {unknown[0]} is not valid for fields param. please check "
                "https://developers.facebook.com/docs/marketing-api/reference/ads-insights/ "
                "for all valid values",
            )
        try:
            time_range = json.loads(req.arg("time_range") or "{}")
            since = date.fromisoformat(time_range["since"])
            until = date.fromisoformat(time_range["until"])
        except (KeyError, ValueError, TypeError):
            raise GraphError(100, "(#100) Param time_range is invalid", 1487534) from None
        if since > until:
            raise GraphError(100, "(#100) time_range: since must be before until", 1487534)
        rows = []
        for (campaign_id, day), daily in sorted(
            self.daily.items(), key=lambda kv: (kv[0][1], kv[0][0])
        ):
            if not since <= day <= until:
                continue
            values = {
                "campaign_id": campaign_id,
                "campaign_name": self.campaigns.get(campaign_id, ""),
                "spend": f"{daily.spend:.2f}",
                "clicks": str(daily.clicks),
                "impressions": str(daily.impressions),
                "account_currency": self.currency,
                "account_id": self.account_id.removeprefix("act_"),
            }
            row = {f: values[f] for f in fields if f in values}
            row["date_start"] = row["date_stop"] = day.isoformat()
            rows.append(row)
        return rows


# -- Conversions API payload ---------------------------------------------------------------------
def _event_list(form: dict[str, Any]) -> list[Any]:
    """``data``: a JSON array of events, each an object or (as facebook-business sends them,
    ``list<string>``) a JSON-encoded object."""
    data = form.get("data")
    if data is None or data == "":
        raise GraphError(100, "(#100) The parameter data is required")
    events = json.loads(data) if isinstance(data, str) else data
    if not isinstance(events, list):
        raise ValueError("data must be an array")
    if not events:
        raise GraphError(100, "(#100) Param data must contain at least one event")
    if len(events) > MAX_EVENTS:
        raise GraphError(
            100,
            f"(#100) Param data must contain at most {MAX_EVENTS} events",
            SUBCODE_INVALID,
            "Too Many Events",
            f"A request can carry at most {MAX_EVENTS} events; send them in batches.",
        )
    return [json.loads(e) if isinstance(e, str) else e for e in events]


def _event_time(raw: dict[str, Any]) -> int:
    value = raw.get("event_time")
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        return int(str(value))
    except ValueError:
        raise _invalid(
            "Invalid event_time", "event_time is required, as a Unix timestamp in seconds."
        ) from None


def _values(value: Any) -> list[str]:
    """A customer information parameter: one string or a list of them."""
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _user_data(user_data: Any, source: str) -> dict[str, Any]:
    if not isinstance(user_data, dict) or not user_data:
        raise _invalid("Missing user_data", "The parameter user_data is required.")
    for key in HASHED & set(user_data):
        if not all(_SHA256_HEX.match(v) for v in _values(user_data[key])):
            raise _invalid(
                "Invalid Hashed Customer Information",
                f"user_data.{key} must be normalized and SHA-256 hashed (lowercase hex).",
            )
    if "fbc" in user_data and not _FBC.match(str(user_data["fbc"])):
        raise _invalid(
            "Invalid fbc", "user_data.fbc must have the form fb.1.<creation time ms>.<fbclid>."
        )
    if "lead_id" in user_data and not _LEAD_ID.match(str(user_data["lead_id"])):
        raise _invalid(
            "Invalid Lead ID",
            "user_data.lead_id must be the 15-17 digit ID Meta generated for the lead.",
            SUBCODE_INVALID_LEAD_ID,
        )
    if source == "website" and not user_data.get("client_user_agent"):
        raise _invalid(
            "Missing client_user_agent", "Website events need user_data.client_user_agent."
        )
    given = {k for k, v in user_data.items() if v not in (None, "", [])}
    if not given & IDENTIFIERS and not {"client_ip_address", "client_user_agent"} <= given:
        raise _invalid(
            "Not Enough Customer Information",
            "user_data needs at least one customer information parameter (such as em, ph, "
            "external_id, fbc or lead_id) to match the event.",
            SUBCODE_NO_USER_DATA,
        )
    return user_data


def _custom_data(custom_data: Any, event_name: str) -> dict[str, Any]:
    if custom_data is None:
        custom_data = {}
    if not isinstance(custom_data, dict):
        raise _invalid("Invalid custom_data", "custom_data must be an object.")
    value = custom_data.get("value")
    if value is not None:
        try:
            if isinstance(value, bool):
                raise ValueError
            float(value)
        except (TypeError, ValueError):
            raise _invalid("Invalid value", "custom_data.value must be a number.") from None
    currency = custom_data.get("currency")
    if currency is not None and not _CURRENCY.match(str(currency)):
        raise _invalid("Invalid currency", "custom_data.currency must be an ISO 4217 code.")
    if value is not None and currency is None:
        raise _invalid("Missing currency", "custom_data.currency is required with a value.")
    if event_name == "Purchase" and (value is None or currency is None):
        raise _invalid(
            "Missing Purchase Value", "Purchase events need custom_data.value and currency."
        )
    return custom_data
