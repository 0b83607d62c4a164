"""Google Ads offline conversions: the ConversionSink side of :class:`GoogleAdsSource`.

- ``POST /v26/customers/{cid}:uploadClickConversions`` (ConversionUploadService): at most 2,000
  ClickConversions a request, ``partialFailure: true``; each row identified by ``gclid``,
  ``gbraid`` or ``wbraid``, else (enhanced conversions for leads) by ``userIdentifiers`` with
  the SHA-256 of the normalised email / phone; ``orderId`` is closedloop's dedup id.
- ``POST /v26/customers/{cid}:uploadConversionAdjustments``: RESTATEMENT (a new value) or
  RETRACTION of a conversion found by its ``orderId``.
- the conversion actions are checked with GAQL ``FROM conversion_action`` before any upload.

Per-row partial failures come back as results: a repeat of a conversion or adjustment the
account already holds (``ORDER_ID_ALREADY_IN_USE``, ``CLICK_CONVERSION_ALREADY_EXISTS``,
``RESTATEMENT_ALREADY_EXISTS``, a retraction of a retracted one) is ``accepted``: it is a
re-send after a crash. ``TOO_RECENT_*`` is ``retry``; anything else ``rejected`` with the
error code and Google's message.

Normalisation (Google Ads API "Normalize and hash user-provided data"): trim, lower-case, and
for gmail.com / googlemail.com addresses drop the dots before the ``@``; phones in E.164 with
the ``+``; then SHA-256 in hex.

Reference: https://developers.google.com/google-ads/api/rest/reference/rest/v26/customers/uploadClickConversions,
https://developers.google.com/google-ads/api/docs/conversions/upload-identifiers and
https://developers.google.com/google-ads/api/docs/conversions/upload-adjustments
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from connector.kernel.batches import chunks
from connector.kernel.identity import normalise_email, sha256_hex
from connector.kernel.records import (
    Conversion,
    ConversionAdjustment,
    ConversionDestination,
    ConversionResult,
)

if TYPE_CHECKING:
    from adapters._http import JsonApi
    from adapters.google_ads.adapter import GoogleAdsSettings

MAX_ROWS = 2000  # "fewer than 2001" conversions or adjustments per request
ALREADY_RECORDED = {
    "ORDER_ID_ALREADY_IN_USE",
    "CLICK_CONVERSION_ALREADY_EXISTS",
    "RESTATEMENT_ALREADY_EXISTS",
}
RETRY_LATER = {"TOO_RECENT_EVENT", "TOO_RECENT_CONVERSION", "TOO_RECENT_CLICK"}
GMAIL = {"gmail.com", "googlemail.com"}
_ACTION = re.compile(r"^(?:customers/(\d+)/conversionActions/)?(\d+)$")
ACTION_QUERY = (
    "SELECT conversion_action.id, conversion_action.name, conversion_action.status, "
    "conversion_action.type, conversion_action.click_through_lookback_window_days "
    "FROM conversion_action WHERE conversion_action.id IN ({ids})"
)


def google_time(value: datetime) -> str:
    """``2026-05-01 10:00:00+00:00``: the form conversionDateTime takes."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")


def row_errors(answer: dict[str, Any]) -> dict[int | None, tuple[str, str]]:
    """Row index -> (error code, message) from a partialFailureError (``None``: no index)."""
    found: dict[int | None, tuple[str, str]] = {}
    for detail in (answer.get("partialFailureError") or {}).get("details") or []:
        for error in detail.get("errors") or []:
            path = (error.get("location") or {}).get("fieldPathElements") or [{}]
            code = next(iter((error.get("errorCode") or {}).values()), "UNKNOWN")
            found.setdefault(path[0].get("index"), (str(code), str(error.get("message", ""))))
    return found


class GoogleAdsConversions:
    """Offline conversion uploads of one Google Ads customer account (mixed into the source)."""

    max_conversions: ClassVar[int] = MAX_ROWS
    event_max_age: ClassVar[timedelta] = timedelta(days=90)  # the longest click-through window
    adjustable: ClassVar[bool] = True
    test_mode: bool = False
    api_version: ClassVar[str]

    if TYPE_CHECKING:
        settings: GoogleAdsSettings
        _http: JsonApi

        def _post(self, path: str, body: dict[str, Any]) -> Any: ...

        def _search(self, query: str) -> Iterator[dict[str, Any]]: ...

    def hash_email(self, email: str) -> str:
        local, at, domain = normalise_email(email).rpartition("@")
        if at and domain in GMAIL:
            local = local.replace(".", "")
        return sha256_hex(f"{local}{at}{domain}")

    def hash_phone(self, e164_digits: str) -> str:
        return sha256_hex("+" + e164_digits)

    def conversion_destinations(self, ids: Sequence[str]) -> dict[str, ConversionDestination]:
        """The conversion actions ``ids`` name, read with one GAQL query."""
        own = self.settings.customer_id
        wanted = {i: m for i in ids if (m := _ACTION.match(i))}
        numbers = sorted({m[2] for m in wanted.values()})
        rows: dict[str, dict[str, Any]] = {}
        try:
            if numbers:
                query = ACTION_QUERY.format(ids=", ".join(numbers))
                rows = {
                    str(r["conversionAction"]["id"]): r["conversionAction"]
                    for r in self._search(query)
                }
        finally:
            self._http.close()
        found = {}
        for raw in ids:
            match = wanted.get(raw)
            action = rows.get(match[2]) if match else None
            problem, name, window = "", "", None
            if match is None:
                problem = f"{raw!r} is not a conversion action id"
            elif match[1] and match[1] != own:
                problem = f"conversion action {raw} belongs to customer {match[1]}, not {own}"
            elif action is None:
                problem = f"conversion action {match[2]} does not exist in customer {own}"
            else:
                name = str(action.get("name", ""))
                window = int(action.get("clickThroughLookbackWindowDays") or 90)
                if action.get("status") != "ENABLED":
                    problem = f"conversion action {match[2]} ({name}) is {action.get('status')}"
                elif action.get("type") != "UPLOAD_CLICKS":
                    problem = (
                        f"conversion action {match[2]} ({name}) is of type "
                        f"{action.get('type')}; uploads need 'Import from clicks' "
                        "(UPLOAD_CLICKS)"
                    )
            found[raw] = ConversionDestination(raw, name, problem, window)
        return found

    def send_conversions(
        self,
        conversions: Sequence[Conversion],
        on_batch: Callable[[list[ConversionResult]], None] | None = None,
    ) -> list[ConversionResult]:
        return self._upload(
            "uploadClickConversions",
            "conversions",
            conversions,
            self._click_conversion,
            on_batch,
        )

    def adjust_conversions(
        self,
        adjustments: Sequence[ConversionAdjustment],
        on_batch: Callable[[list[ConversionResult]], None] | None = None,
    ) -> list[ConversionResult]:
        return self._upload(
            "uploadConversionAdjustments",
            "conversionAdjustments",
            adjustments,
            self._adjustment,
            on_batch,
        )

    def _upload(
        self,
        method: str,
        field: str,
        items: Sequence[Any],
        row: Callable[[Any], dict[str, Any]],
        on_batch: Callable[[list[ConversionResult]], None] | None,
    ) -> list[ConversionResult]:
        path = f"/{self.api_version}/customers/{self.settings.customer_id}:{method}"
        out: list[ConversionResult] = []
        try:
            for batch in chunks(items, MAX_ROWS):
                answer = self._post(path, {field: [row(i) for i in batch], "partialFailure": True})
                errors = row_errors(answer)
                results = [
                    _result(item, errors.get(n) or errors.get(None)) for n, item in enumerate(batch)
                ]
                if on_batch is not None:
                    on_batch(results)
                out.extend(results)
        finally:
            self._http.close()
        return out

    def _action(self, destination: str) -> str:
        match = _ACTION.match(destination)
        return (
            f"customers/{self.settings.customer_id}/conversionActions/{match[2] if match else ''}"
        )

    def _click_conversion(self, c: Conversion) -> dict[str, Any]:
        row: dict[str, Any] = {
            "conversionAction": self._action(c.destination),
            "conversionDateTime": google_time(c.occurred_at),
            "orderId": c.dedup_id,
        }
        if c.value is not None:
            row.update(conversionValue=c.value, currencyCode=c.currency)
        click = next(
            (
                (k, v)
                for k, v in (("gclid", c.gclid), ("gbraid", c.gbraid), ("wbraid", c.wbraid))
                if v
            ),
            None,
        )
        if click:
            row[click[0]] = click[1]
        else:  # enhanced conversions for leads
            row["userIdentifiers"] = [
                {kind: value}
                for kind, value in (
                    ("hashedEmail", c.email_sha256),
                    ("hashedPhoneNumber", c.phone_sha256),
                )
                if value
            ]
        if c.consent:
            row["consent"] = {"adUserData": "GRANTED"}
        return row

    def _adjustment(self, a: ConversionAdjustment) -> dict[str, Any]:
        row: dict[str, Any] = {
            "adjustmentType": "RETRACTION" if a.value is None else "RESTATEMENT",
            "conversionAction": self._action(a.destination),
            "orderId": a.dedup_id,
            "adjustmentDateTime": google_time(a.adjusted_at),
        }
        if a.value is not None:
            row["restatementValue"] = {"adjustedValue": a.value, "currencyCode": a.currency}
        return row


def _result(item: Any, error: tuple[str, str] | None) -> ConversionResult:
    if error is None:
        return ConversionResult(item.dedup_id, "accepted")
    code, message = error
    retraction = isinstance(item, ConversionAdjustment) and item.value is None
    if code in ALREADY_RECORDED or (code == "CONVERSION_ALREADY_RETRACTED" and retraction):
        return ConversionResult(item.dedup_id, "accepted", f"already recorded ({code})")
    status = "retry" if code in RETRY_LATER else "rejected"
    return ConversionResult(item.dedup_id, status, f"{code}: {message}".rstrip(": "))
