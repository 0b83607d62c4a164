"""Conversions sent back to the ad platforms, per platform and campaign (``closedloop report``).

Per (platform, campaign): ``sent`` (they reached the platform), ``accepted`` (including those
later retracted), ``rejected`` (refused by the platform, or held back because it would refuse
them: the reason says which) with the count of each reason, ``retracted``, ``pending`` (not
confirmed: sent by a run that stopped before the answer, or to retry) and ``value_sent``
(accepted, not retracted, in the report's currency). The campaign is the platform's last ad
touch of the person before the milestone; conversions count in the period of their milestone.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import bindparam, inspect, text
from sqlmodel import Session

from connector.store.models import UtcDateTime

NO_CAMPAIGN = "No campaign"
COLUMNS = ("platform", "campaign", "sent", "accepted", "rejected", "rejected_reasons",
           "retracted", "pending", "value_sent")  # fmt: skip
_QUERY = """
SELECT platform, campaign, status, reason, sent_at IS NOT NULL, COUNT(*), SUM(value_base)
FROM conversion WHERE occurred_at >= :start AND occurred_at < :end
GROUP BY platform, campaign, status, reason, sent_at IS NOT NULL"""
_TYPED = text(_QUERY).bindparams(
    bindparam("start", type_=UtcDateTime()), bindparam("end", type_=UtcDateTime())
)


def reason_key(reason: str) -> str:
    """``EXPIRED_EVENT: The click ...`` -> ``EXPIRED_EVENT``: the code, or the whole sentence."""
    return reason.split(":", 1)[0].strip() or "unknown"


def conversion_rows(session: Session, params: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per platform and campaign (empty when no conversion was ever recorded)."""
    if not inspect(session.get_bind()).has_table("conversion"):
        return []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    reasons: dict[tuple[str, str], Counter[str]] = {}
    for platform, campaign, status, reason, sent, n, value in session.execute(_TYPED, params):
        key = (platform, campaign or NO_CAMPAIGN)
        rec = rows.setdefault(key, dict.fromkeys(COLUMNS, 0) | {"platform": key[0],
                                                                "campaign": key[1]})  # fmt: skip
        rec["sent"] += n if sent else 0
        if status in {"accepted", "retracted"}:
            rec["accepted"] += n
        if status == "accepted":
            rec["value_sent"] += float(value or 0)
        if status == "rejected":
            rec["rejected"] += n
            reasons.setdefault(key, Counter())[reason_key(reason)] += n
        rec["retracted"] += n if status == "retracted" else 0
        rec["pending"] += n if status in {"pending", "retry", "unconfirmed"} else 0
    for key, rec in rows.items():
        rec["rejected_reasons"] = dict(reasons.get(key, Counter()).most_common())
        rec["value_sent"] = round(rec["value_sent"], 2)
    return sorted(rows.values(), key=lambda r: (r["platform"], -r["value_sent"], r["campaign"]))


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """A record for CSV and tables: the reason counts as ``EXPIRED_EVENT 2; ...``."""
    reasons = record.get("rejected_reasons") or {}
    return record | {"rejected_reasons": "; ".join(f"{k} {v}" for k, v in reasons.items())}
