"""The cells and tables of the HTML report: how amounts, counts, shares and multiples are
written, and one table builder (escaped; numbers right-aligned, negatives marked)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, NamedTuple

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "CAD": "CA$", "AUD": "A$"}
NONE = "–"


@dataclass(frozen=True)
class Money:
    """How amounts of the report's currency are written: ``$1,234`` or ``1,234 CHF``."""

    prefix: str
    suffix: str

    @classmethod
    def of(cls, currency: str) -> Money:
        code = currency.strip().upper()
        if code in SYMBOLS:
            return cls(SYMBOLS[code], "")
        return cls("", f" {code}" if code else "")

    def __call__(self, value: float | None, decimals: int = 0) -> str:
        if value is None:
            return NONE
        sign = "-" if value < 0 and round(value, decimals) != 0 else ""
        return f"{sign}{self.prefix}{abs(value):,.{decimals}f}{self.suffix}"


def count(value: float | None) -> str:
    return NONE if value is None else f"{value:,.0f}"


def credit(value: float | None) -> str:
    """Fractional model credit (opportunities, won deals): one decimal."""
    return NONE if value is None else f"{value:,.1f}"


def percent(value: float | None) -> str:
    return NONE if value is None else f"{value * 100:,.1f}%"


def multiple(value: float | None) -> str:
    return NONE if value is None else f"{value:,.2f}x"


def text(value: Any) -> str:
    return escape(str(value)) if value not in (None, "") else NONE


def model_name(model: str) -> str:
    return model.replace("_", " ").capitalize()


class Column(NamedTuple):
    header: str
    key: str
    cell: Callable[[Any], str]
    numeric: bool = True


def num(row: Mapping[str, Any], key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def table(
    kind: str,
    columns: Sequence[Column],
    rows: Sequence[Mapping[str, Any]],
    footer: Sequence[Mapping[str, Any]] = (),
) -> str:
    head = "".join(
        f'<th scope="col" class="{"num" if c.numeric else "name"}">{escape(c.header)}</th>'
        for c in columns
    )

    def line(row: Mapping[str, Any]) -> str:
        cells = []
        for c in columns:
            value = row.get(c.key) if c.key else row
            if not c.numeric:
                cells.append(f'<td class="name">{c.cell(value)}</td>')
                continue
            negative = isinstance(value, int | float) and value < 0
            cells.append(
                f'<td class="num{" neg" if negative else ""}">{escape(c.cell(value))}</td>'
            )
        return "<tr>" + "".join(cells) + "</tr>"

    body = "".join(line(r) for r in rows)
    compact = ' class="compact"' if len(columns) <= 8 else ""
    foot = f"<tfoot>{''.join(line(r) for r in footer)}</tfoot>" if footer else ""
    return (
        f'<div class="table-wrap"><table data-table="{kind}"{compact}>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table></div>"
    )
