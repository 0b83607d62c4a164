"""A wire-faithful Meta Marketing API (Graph API) emulator: ad account insights.

Serves ``GET /{version}/act_{id}/insights`` with the parameters ``facebook-business`` sends
(``access_token``, ``level``, ``time_increment``, ``time_range`` as JSON, ``fields``, ``limit``,
``after``): one row per campaign and day, numbers as strings, cursor paging
(``paging.cursors.after`` plus ``paging.next`` while rows remain, default ``limit`` 25).
Errors use the Graph error object: code 190 ``OAuthException`` for a bad token (HTTP 400),
100 for a bad parameter or unknown object, throttling code 80000 (``is_transient``) with the
``X-Business-Use-Case-Usage`` header carrying ``estimated_time_to_regain_access`` (minutes),
codes 1 and 2 for server errors.

Reference: https://developers.facebook.com/docs/marketing-api/insights and
https://developers.facebook.com/docs/graph-api/overview/rate-limiting#ads-insights
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from adapters._emulator import EmulatorServer, Request, Response, route

SAMPLE_TODAY = date(2026, 11, 20)
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


@dataclass
class Daily:
    spend: float
    clicks: int
    impressions: int


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode().rstrip("=")


def _uncursor(token: str) -> int:
    return int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())


class GraphError(Exception):
    def __init__(self, code: int, message: str, subcode: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode = code, message, subcode


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

    # -- seeding ---------------------------------------------------------------------------
    def add_campaign(self, id: str | int, name: str) -> None:
        self.campaigns[str(id)] = name

    def add_daily(
        self, campaign_id: str | int, day: date, spend: float, clicks: int, impressions: int
    ) -> None:
        """Set (or restate) one campaign-day."""
        self.daily[(str(campaign_id), day)] = Daily(spend, clicks, impressions)

    def seed_sample(self) -> None:
        """Three campaigns, each with ten days of spend in the 30 days before 2026-11-20."""
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
    ) -> Response:
        error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
        if subcode is not None:
            error["error_subcode"] = subcode
        if transient:
            error["is_transient"] = True
        error["fbtrace_id"] = "AEmulatorTrace"
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
