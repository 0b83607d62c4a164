"""What the org says about itself: its default time zone and its dated conversion rates.

- ``SELECT TimeZoneSidKey FROM Organization``: the org's default time zone (Setup > Company
  Information), the zone of date fields such as ``Opportunity.CloseDate``
  (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_organization.htm).
- ``DatedConversionRate`` (advanced currency management).
"""

from __future__ import annotations

import logging
from datetime import date

from adapters.salesforce.connection import SalesforceConnection
from connector.kernel.errors import ClosedloopError, ConfigError
from connector.kernel.records import CurrencyRate
from connector.kernel.timeutil import zone

log = logging.getLogger(__name__)


def org_time_zone(conn: SalesforceConnection) -> str:
    """The org's default time zone (an IANA name such as ``America/Los_Angeles``)."""
    try:
        rows = list(conn.query("SELECT TimeZoneSidKey FROM Organization"))
    except ConfigError as exc:  # a user without "View Setup and Configuration"
        raise ConfigError(
            f"cannot read the org's time zone ({exc}); give the integration user "
            "'View Setup and Configuration', or set crm.settings.time_zone"
        ) from None
    name = str(rows[0].get("TimeZoneSidKey") or "") if rows else ""
    try:
        zone(name)
    except ValueError:
        raise ConfigError(
            f"Salesforce gives the org's time zone as {name!r}, which this system does not know; "
            "set crm.settings.time_zone to its IANA name (e.g. America/Los_Angeles)"
        ) from None
    return name


def dated_rates(conn: SalesforceConnection) -> list[CurrencyRate]:
    """The org's dated conversion rates; none when it has multi-currency without them."""
    soql = "SELECT IsoCode, ConversionRate, StartDate, NextStartDate FROM DatedConversionRate"
    try:
        rows = list(conn.query(soql))
    except ClosedloopError as exc:  # multi-currency without dated rates
        log.info("no dated conversion rates: %s", exc)
        return []
    return [
        CurrencyRate(r["IsoCode"], float(r["ConversionRate"]),
                     date.fromisoformat(r["StartDate"]), date.fromisoformat(r["NextStartDate"]))
        for r in rows
    ]  # fmt: skip
