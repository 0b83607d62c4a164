"""What the portal says about itself: its time zone and its deal pipelines.

- ``GET /account-info/v3/details``: ``timeZone`` (e.g. ``US/Eastern``), the zone the portal's
  dates are in (https://developers.hubspot.com/docs/api/settings/account-information-api).
  hubspot-api-client has no model for it: the call goes through the client's own ``call_api``.
- ``GET /crm/v3/pipelines/deals``: each pipeline's stages with their labels and order
  (https://developers.hubspot.com/docs/api/crm/pipelines).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.kernel.errors import ConfigError, RecordError
from connector.kernel.timeutil import zone

Call = Callable[..., Any]


@dataclass(frozen=True)
class Stage:
    label: str
    order: int


def portal_time_zone(call: Call, api_client: Any) -> str:
    """The portal's time zone name, as account-info gives it."""
    try:
        details = call(
            "read the portal's time zone (account-info)",
            api_client.call_api,
            "/account-info/v3/details",
            "GET",
            header_params={"Accept": "application/json"},
            response_types_map={200: "object"},
            auth_settings=["oauth2"],
            _return_http_data_only=False,
        )
    except RecordError as exc:  # refused (not a token or a limit problem)
        raise ConfigError(f"{exc}; set crm.settings.time_zone to the portal's zone") from None
    name = str((details or {}).get("timeZone") or "")
    try:
        zone(name)
    except ValueError:
        raise ConfigError(
            f"HubSpot gives the portal's time zone as {name!r}, which this system does not know; "
            "set crm.settings.time_zone to its IANA name (e.g. America/New_York)"
        ) from None
    return name


def deal_stages(call: Call, pipelines_api: Any) -> dict[str, Stage]:
    """Stage id -> label and order; with several pipelines the label names its pipeline."""
    page = call("read deal pipelines", pipelines_api.get_all_with_http_info, "deals")
    pipelines = sorted(page.results or (), key=lambda p: (p.display_order or 0, p.label or ""))
    stages: dict[str, Stage] = {}
    for n, pipeline in enumerate(pipelines):
        ordered = sorted(pipeline.stages or (), key=lambda s: (s.display_order or 0, s.label))
        for m, stage in enumerate(ordered):
            label = stage.label if len(pipelines) == 1 else f"{pipeline.label}: {stage.label}"
            stages[str(stage.id)] = Stage(label, n * 1000 + m)
    return stages
