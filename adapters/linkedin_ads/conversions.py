"""LinkedIn Conversions API: the ConversionSink side of :class:`LinkedInAdsSource`.

- ``GET /rest/conversions?q=account&account=<urn>``: the account's conversion rules, read once
  before any send (a rule must exist, be enabled and use the CONVERSIONS_API method).
- ``POST /rest/conversionEvents`` with ``X-RestLi-Method: BATCH_CREATE``: at most 5,000 events
  a request, each with the rule's URN (``conversion``), ``conversionHappenedAt`` (epoch ms),
  ``eventId`` (closedloop's dedup id: LinkedIn keeps an event once per rule and eventId),
  ``user.userIds`` (``SHA256_EMAIL``, ``LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID`` = li_fat_id)
  and ``conversionValue`` (amount as a decimal string). The token needs ``rw_conversions``.

LinkedIn refuses the whole request when one event is bad (400 naming the failing ``indices``,
422 naming each ``Index: i``): those events are rejected with LinkedIn's reason and the rest
sent again. LinkedIn has no adjustment API (``adjustable`` is False).

Normalisation: email trimmed and lower-cased, SHA-256 in hex. Phones are not taken.

Reference: https://learn.microsoft.com/en-us/linkedin/marketing/integrations/ads-reporting/conversions-api
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from adapters._http import RequestRejected
from connector.kernel.batches import chunks
from connector.kernel.identity import email_hash
from connector.kernel.records import (
    Conversion,
    ConversionAdjustment,
    ConversionDestination,
    ConversionResult,
)
from connector.kernel.timeutil import to_epoch_ms

if TYPE_CHECKING:
    from adapters._http import JsonApi
    from adapters.linkedin_ads.adapter import LinkedInAdsSettings

MAX_EVENTS = 5000  # events per BATCH_CREATE
RULE_URN = "urn:lla:llaPartnerConversion:{}"
_INDICES = re.compile(r"([^;]+?),\s*indices \[([\d,\s]+)\]")
_INDEX_BLOCK = re.compile(r"Index: (\d+), (.*?)(?=Index: \d+,|\Z)", re.S)


def failing_indices(detail: str) -> dict[int, str]:
    """Element index -> LinkedIn's reason, from a 400 or 422 refusing a batch."""
    found: dict[int, str] = {}
    for reason, indices in _INDICES.findall(detail):
        reason = re.sub(r"^.*?provided\.\s*|^\s*\(0-indexed\)", "", reason).strip()
        for index in indices.split(","):
            found.setdefault(int(index), reason)
    for index, text in _INDEX_BLOCK.findall(detail):
        found.setdefault(int(index), " ".join(text.split()))
    return found


class LinkedInConversions:
    """Conversion events of one sponsored account (mixed into the LinkedIn Ads source)."""

    max_conversions: ClassVar[int] = MAX_EVENTS
    event_max_age: ClassVar[timedelta] = timedelta(days=90)  # conversionHappenedAt window
    adjustable: ClassVar[bool] = False
    test_mode: bool = False

    if TYPE_CHECKING:
        settings: LinkedInAdsSettings
        _http: JsonApi

    def hash_email(self, email: str) -> str:
        return email_hash(email)

    def hash_phone(self, e164_digits: str) -> str:
        return ""  # LinkedIn matches on email and its click id, not on phones

    def conversion_destinations(self, ids: Sequence[str]) -> dict[str, ConversionDestination]:
        account = quote(f"urn:li:sponsoredAccount:{self.settings.account_id}", safe="")
        rules: dict[str, dict[str, Any]] = {}
        start = 0
        try:
            while True:
                path = f"/rest/conversions?q=account&account={account}&start={start}&count=100"
                body = self._http.call("GET", path)
                elements = body.get("elements") or []
                rules.update({str(r["id"]): r for r in elements})
                start += len(elements)
                if not elements or start >= int((body.get("paging") or {}).get("total") or 0):
                    break
        finally:
            self._http.close()
        found = {}
        for rule_id in ids:
            rule, problem = rules.get(rule_id), ""
            if rule is None:
                problem = (
                    f"conversion rule {rule_id} does not exist in ad account "
                    f"{self.settings.account_id}"
                )
            elif rule.get("conversionMethod") != "CONVERSIONS_API":
                problem = (
                    f"conversion rule {rule_id} ({rule.get('name')}) takes "
                    f"{rule.get('conversionMethod')}, not CONVERSIONS_API events"
                )
            elif not rule.get("enabled", True):
                problem = f"conversion rule {rule_id} ({rule.get('name')}) is disabled"
            name = str((rule or {}).get("name", ""))
            found[rule_id] = ConversionDestination(rule_id, name, problem)
        return found

    def send_conversions(
        self,
        conversions: Sequence[Conversion],
        on_batch: Callable[[list[ConversionResult]], None] | None = None,
    ) -> list[ConversionResult]:
        out: list[ConversionResult] = []
        try:
            for batch in chunks(conversions, MAX_EVENTS):
                results = self._send(list(batch))
                if on_batch is not None:
                    on_batch(results)
                out.extend(results)
        finally:
            self._http.close()
        return out

    def adjust_conversions(
        self,
        adjustments: Sequence[ConversionAdjustment],
        on_batch: Callable[[list[ConversionResult]], None] | None = None,
    ) -> list[ConversionResult]:
        raise NotImplementedError("the Conversions API has no adjustments (adjustable=False)")

    def _send(self, batch: list[Conversion]) -> list[ConversionResult]:
        """One BATCH_CREATE; when LinkedIn names failing events, they are rejected and the
        others sent again."""
        results: dict[int, ConversionResult] = {}
        todo = list(range(len(batch)))
        while todo:
            body = {"elements": [self._element(batch[i]) for i in todo]}
            try:
                answer = self._http.call(
                    "POST",
                    "/rest/conversionEvents",
                    json=body,
                    headers={"X-RestLi-Method": "BATCH_CREATE"},
                )
            except RequestRejected as exc:
                named = failing_indices(exc.detail)
                failing = {n: why for n, why in named.items() if n < len(todo)}
                failing = failing or dict.fromkeys(range(len(todo)), "")  # none named: all
                for n, reason in failing.items():
                    i = todo[n]
                    results[i] = ConversionResult(
                        batch[i].dedup_id, "rejected", reason or exc.detail
                    )
                todo = [i for n, i in enumerate(todo) if n not in failing]
                continue
            for i, element in zip(todo, answer.get("elements") or [], strict=False):
                ok = int(element.get("status", 0)) in (200, 201)
                why = "" if ok else str(element.get("error") or element.get("status"))
                results[i] = ConversionResult(
                    batch[i].dedup_id, "accepted" if ok else "rejected", why
                )
            todo = [i for i in todo if i not in results]
            for i in todo:  # an answer shorter than the request: nothing says they landed
                results[i] = ConversionResult(batch[i].dedup_id, "retry", "no status returned")
            todo = []
        return [results[i] for i in range(len(batch))]

    @staticmethod
    def _element(c: Conversion) -> dict[str, Any]:
        user_ids = [{"idType": "SHA256_EMAIL", "idValue": c.email_sha256}] if c.email_sha256 else []
        if c.li_fat_id:
            user_ids.append(
                {"idType": "LINKEDIN_FIRST_PARTY_ADS_TRACKING_UUID", "idValue": c.li_fat_id}
            )
        element: dict[str, Any] = {
            "conversion": RULE_URN.format(c.destination),
            "conversionHappenedAt": to_epoch_ms(c.occurred_at),
            "eventId": c.dedup_id,
            "user": {"userIds": user_ids},
        }
        if c.value is not None:
            element["conversionValue"] = {"currencyCode": c.currency, "amount": f"{c.value:.2f}"}
        return element
