"""Revenue: deals and their buyers from the CRM into the store, amounts in base currency.

Runs after extract and match (deals name contacts the store already holds) and before attribute.
A closed deal's journey runs to the end of its close date in the CRM's time zone
(``close_day_end``), so touches during the close day count.
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, update
from sqlmodel import Session, col, delete

from connector.kernel.records import CrmDeal, CurrencyRate
from connector.kernel.timeutil import day_end, zone
from connector.run.context import RunContext
from connector.run.crm_stream import read_stream
from connector.store import models
from connector.store.database import table_of
from connector.store.writes import insert_rows, upsert

log = logging.getLogger(__name__)


class DealMoney:
    """Deal amounts into base currency: the CRM's dated rates where it has them (Salesforce
    advanced currency management, when its corporate currency is the base), else config rates."""

    def __init__(self, ctx: RunContext) -> None:
        self.currency = ctx.loaded.config.currency
        rates: list[CurrencyRate] = list(getattr(ctx.crm, "currency_rates", list)())
        corporate = {r.iso_code for r in rates if r.rate == 1.0}
        if rates and self.currency.base not in corporate:
            log.warning("CRM rates are relative to %s, not base %s: using config rates",
                        ",".join(sorted(corporate)) or "?", self.currency.base)  # fmt: skip
            rates = []
        self.dated: dict[str, list[CurrencyRate]] = {}
        for r in rates:
            self.dated.setdefault(r.iso_code.upper(), []).append(r)

    def to_base(self, deal: CrmDeal) -> float | None:
        if deal.amount is None:
            return None
        code = (deal.currency or self.currency.base).upper()
        on = deal.close_date or (deal.closed_at or deal.created_at).date()
        for r in self.dated.get(code, ()):
            if r.start <= on < r.end:
                return deal.amount / r.rate
        return self.currency.to_base(deal.amount, code)


def deal_row(ctx: RunContext, money: DealMoney, tz: ZoneInfo, d: CrmDeal) -> dict[str, Any]:
    amount_base = money.to_base(d)
    # A closed deal without a close date (HubSpot's closedate is optional): when it last changed
    close_date = d.close_date or (d.closed_at or d.updated_at).astimezone(tz).date()
    if d.amount is not None and amount_base is None:
        log.warning("deal %s: no rate for currency %s; left out of revenue", d.crm_id, d.currency)
        ctx.count("deals_unknown_currency")
    return {
        "crm_object": d.object, "crm_id": d.crm_id, "name": d.name, "amount": d.amount,
        "currency": d.currency, "amount_base": amount_base, "stage": d.stage,
        "is_won": d.is_won, "is_closed": d.is_closed, "created_at": d.created_at,
        "updated_at": d.updated_at, "closed_at": d.closed_at, "account_id": d.account_id,
        "close_date": close_date if d.is_closed else None,
        "close_day_end": day_end(close_date, tz) if d.is_closed else None,
        "stage_label": d.stage_label or d.stage, "stage_order": d.stage_order,
    }  # fmt: skip


def store_deals(
    ctx: RunContext, money: DealMoney, tz: ZoneInfo, session: Session, batch: list[CrmDeal]
) -> None:
    upsert(session, models.Deal, [deal_row(ctx, money, tz, d) for d in batch], ["crm_id"])
    links = sorted({(d.crm_id, c) for d in batch for c in d.contact_ids})
    session.execute(
        delete(models.DealContact).where(
            col(models.DealContact.deal_crm_id).in_([d.crm_id for d in batch])
        )
    )
    insert_rows(
        session, models.DealContact, [{"deal_crm_id": d, "contact_crm_id": c} for d, c in links]
    )


def extract_deals(ctx: RunContext, counted: str = "deals_read") -> None:
    money = DealMoney(ctx)
    tz = zone(ctx.crm.time_zone())
    n = read_stream(
        ctx, "deals", ctx.crm.deals,
        lambda session, batch: store_deals(ctx, money, tz, session, batch),
        models.Deal, [ctx.crm.deal_object],
    )  # fmt: skip
    ctx.count(counted, n)
    with Session(ctx.engine) as session:
        backfill_close_days(session, tz)
        session.commit()


def backfill_close_days(session: Session, tz: ZoneInfo) -> None:
    """Closed deals stored before close dates were kept: their close date and close-day end,
    from when they closed (else last changed), in the CRM's time zone."""
    d = table_of(models.Deal)
    rows = session.execute(
        select(d.c.id, func.coalesce(d.c.closed_at, d.c.updated_at)).where(
            d.c.is_closed, d.c.close_date.is_(None)
        )
    ).all()
    if rows:
        stmt = update(d).where(d.c.id == bindparam("i"))
        days = [(i, at.astimezone(tz).date()) for i, at in rows]
        session.execute(
            stmt.values(close_date=bindparam("day"), close_day_end=bindparam("end")),
            [{"i": i, "day": day, "end": day_end(day, tz)} for i, day in days],
        )
