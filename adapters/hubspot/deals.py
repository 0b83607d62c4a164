"""HubSpot deal objects as closedloop's :class:`CrmDeal`, and the property conversions they need."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from adapters.hubspot.account import Stage
from connector.kernel.records import CrmDeal
from connector.kernel.timeutil import from_epoch_ms, local_date, parse_datetime


def next_after(page: dict[str, Any]) -> str | None:
    """The cursor of a page's next page (list, search, association results)."""
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after is not None else None


def deal_contacts(
    call: Callable[..., Any], get_page: Callable[..., Any], deal_ids: list[str]
) -> dict[str, list[str]]:
    """Contact ids per deal id (v4 associations batch read), following each deal's own
    paging; ``call`` is the adapter's one way to send a request."""
    found: dict[str, list[str]] = {}
    pending: list[dict[str, str]] = [{"id": i} for i in deal_ids]
    while pending:
        page = call("read deal-contact associations", get_page, "deals", "contacts",
                    {"inputs": pending}, raw=True)  # fmt: skip
        pending = []
        for result in page.get("results") or ():
            deal_id = str(result["from"]["id"])
            found.setdefault(deal_id, []).extend(
                str(t["toObjectId"]) for t in result.get("to") or ()
            )
            after = next_after(result)
            if after:
                pending.append({"id": deal_id, "after": after})
    return found


def parse_datetime_value(value: str | None) -> datetime | None:
    """A datetime property value: ISO-8601 in v3 responses, epoch milliseconds in older data."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return from_epoch_ms(text) if text.isdigit() else parse_datetime(text)
    except ValueError:
        return None


def modified_at(item: Any, prop: str) -> datetime:
    """When the CRM last modified a record (the search or list JSON): its modification property
    ``prop``, which searches filter on, else its ``updatedAt``."""
    values = item.get("properties") or {}
    return parse_datetime_value(values.get(prop)) or parse_datetime(item["updatedAt"])


def _amount(value: str | None) -> float | None:
    try:
        amount = float(value or "")
    except ValueError:
        return None
    return amount if math.isfinite(amount) else None


def deal_record(
    item: Any, contact_ids: list[str], stages: dict[str, Stage], tz: ZoneInfo
) -> CrmDeal:
    """One deal (the search or list JSON): its close date is the day ``closedate`` falls on in
    the portal's time zone."""
    values = item.get("properties") or {}
    is_won = values.get("hs_is_closed_won") == "true"
    is_closed = is_won or values.get("hs_is_closed") == "true"
    # An open deal's closedate is a forecast, not a close.
    closed_at = parse_datetime_value(values.get("closedate")) if is_closed else None
    stage_id = values.get("dealstage") or ""
    stage = stages.get(stage_id, Stage(stage_id, len(stages)))
    return CrmDeal(
        object="deals",
        crm_id=str(item["id"]),
        name=values.get("dealname") or "",
        amount=_amount(values.get("amount")),
        currency=values.get("deal_currency_code") or None,
        stage=stage_id,
        is_won=is_won,
        is_closed=is_closed,
        created_at=parse_datetime(item["createdAt"]),
        updated_at=modified_at(item, "hs_lastmodifieddate"),
        closed_at=closed_at,
        contact_ids=tuple(dict.fromkeys(contact_ids)),
        close_date=local_date(closed_at, tz) if closed_at else None,
        stage_label=stage.label,
        stage_order=stage.order,
    )
