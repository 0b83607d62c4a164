"""HubSpot CRM: contacts and deals in, contact and deal properties out.

Reads:

- ``contacts``: the full list (``GET /crm/v3/objects/contacts``, cursor paging) or, with a
  ``since``, the CRM search API (``POST /crm/v3/objects/contacts/search``) filtered on
  ``lastmodifieddate >= since`` and sorted by it. Search stops at 10,000 results per query, so
  the walk restarts from the last modification time it reached, skipping the records already
  read at that instant (a whole window at one millisecond is read in id order instead).
- ``deals``: the same on ``hs_lastmodifieddate``; each deal's buyers come from the v4
  associations batch read (``POST /crm/v4/associations/deals/contacts/batch/read``).
- property definitions (``GET /crm/v3/properties/{object}``) and current values
  (``POST /crm/v3/objects/{object}/batch/read``).
- the portal's time zone and deal stage labels (:mod:`adapters.hubspot.account`).

Writes: ``POST /crm/v3/objects/{object}/batch/update`` (100 records per call; a 207 names the
records that failed), and property groups / properties (``POST /crm/v3/properties/{object}``
and ``.../groups``) for the fields closedloop owns.

Every call goes through the real ``hubspot-api-client``, one client-side rate limiter (a
share of the ten-second limit: the tier's or the settings', resized by the portal's
``X-HubSpot-RateLimit-Max`` / ``-Interval-Milliseconds`` and held off by ``-Remaining`` and
after a 429 for the interval; search has its own per-second limiter), a per-run share of the
daily limit, and :func:`connector.kernel.retry.call_with_retry`. urllib3's own
retries are off, so each HTTP request is counted once and retried in one place.

API reference: https://developers.hubspot.com/docs/api/crm/understanding-the-crm
Search: https://developers.hubspot.com/docs/api/crm/search
Limits: https://developers.hubspot.com/docs/api/usage-details
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from hubspot import HubSpot
from pydantic import BaseModel
from urllib3.util.retry import Retry

from adapters.hubspot.account import deal_stages, portal_time_zone
from adapters.hubspot.deals import deal_contacts, deal_record, modified_at, next_after
from adapters.hubspot.errors import classify
from adapters.hubspot.limits import PortalLimits
from adapters.hubspot.properties import field_spec, property_body
from adapters.hubspot.settings import HubSpotSettings
from connector.kernel import metrics
from connector.kernel.batches import chunks
from connector.kernel.errors import RecordError, TransientError
from connector.kernel.ratelimit import RateLimiter
from connector.kernel.records import CrmDeal, CrmRecord, FieldSpec, RecordUpdate, WriteResult
from connector.kernel.retry import call_with_retry
from connector.kernel.timeutil import parse_datetime, to_epoch_ms, zone

SYSTEM = "hubspot"
SEARCH_PAGE = 200
SEARCH_WINDOW = 10_000
ASSOCIATION_BATCH = 1000
MODIFIED = {"contacts": "lastmodifieddate", "deals": "hs_lastmodifieddate"}
DEAL_PROPERTIES = (
    "dealname", "amount", "deal_currency_code", "dealstage", "hs_is_closed_won", "hs_is_closed",
    "closedate", "hs_lastmodifieddate",
)  # fmt: skip


# -- small conversions ------------------------------------------------------------------------
def _json(response: Any) -> tuple[Any, Any]:
    """(body, headers) of a response the client left unread (``_preload_content=False``)."""
    try:
        return json.loads(response.data or b"null"), response.headers
    finally:
        response.release_conn()


class HubSpotCrm:
    """The CRM adapter for HubSpot (contacts as people, deals as deals)."""

    Settings: ClassVar[type[BaseModel]] = HubSpotSettings
    max_batch: ClassVar[int] = 100
    modified_resolution: ClassVar[timedelta] = timedelta(milliseconds=1)
    person_objects: tuple[str, ...] = ("contacts",)
    deal_object: str = "deals"

    def __init__(self, settings: HubSpotSettings) -> None:
        self.settings = settings
        client = HubSpot(
            access_token=settings.access_token.get_secret_value(),
            host=settings.host.rstrip("/"),
            retry=Retry(total=0, raise_on_status=False),  # retries live in connector.kernel.retry
        )
        # Each ``client.crm.x.y_api`` access builds a new ApiClient and pool: build each once.
        crm = client.crm
        self._objects = crm.objects.basic_api
        self._search = crm.objects.search_api
        self._batch = crm.objects.batch_api
        self._properties = crm.properties.core_api
        self._groups = crm.properties.groups_api
        self._associations = crm.associations.v4.batch_api
        self._pipelines = crm.pipelines.pipelines_api
        self._time_zone = settings.time_zone
        self._schemas = crm.schemas.core_api  # custom objects: touch_records.py
        self._limits = PortalLimits(settings)
        self._search_limiter = RateLimiter(SYSTEM, settings.search_per_second, 1.0)
        self._calls = 0

    # -- plumbing ---------------------------------------------------------------------------
    def _call(
        self,
        action: str,
        method: Callable[..., Any],
        *args: Any,
        search: bool = False,
        raw: bool = False,
        **kw: Any,
    ) -> Any:
        """One API call: limiter, count, classify, retry. Returns the deserialised body: the
        client's model objects, or with ``raw`` the JSON as dicts (the client's models cost
        more CPU than the request itself on large batches, mostly parsing dates never read)."""
        limiter = self._search_limiter if search else self._limits.limiter

        def attempt() -> Any:
            self._limits.spend(self._calls, action)
            limiter.acquire()
            self._calls += 1
            metrics.API_CALLS.labels(SYSTEM).inc()
            try:
                answer = method(
                    *args,
                    _request_timeout=self.settings.timeout_seconds,
                    _preload_content=not raw,
                    **kw,
                )
                data, headers = _json(answer) if raw else (answer[0], answer[2])
            except Exception as error:
                classified = classify(error, action)
                if classified is None:
                    raise
                self._limits.observe(getattr(error, "headers", None))
                if getattr(error, "status", None) == 429 and isinstance(classified, TransientError):
                    limiter.observe(0, resets_in=classified.retry_after)  # wait the window out
                raise classified from error
            self._limits.observe(headers)
            return data

        return call_with_retry(attempt)

    def api_calls(self) -> int:
        """HTTP requests this adapter has sent (retries included)."""
        return self._calls

    def close(self) -> None:
        """Close the connection pools (the adapter is unusable afterwards)."""
        for api in (
            self._objects, self._search, self._batch, self._properties, self._groups,
            self._associations, self._pipelines, self._schemas,
        ):  # fmt: skip
            api.api_client.rest_client.pool_manager.clear()

    def __enter__(self) -> HubSpotCrm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- fields -----------------------------------------------------------------------------
    def describe_fields(self, obj: str) -> dict[str, FieldSpec]:
        page = self._call(f"read {obj} properties", self._properties.get_all_with_http_info, obj)
        return {p.name: field_spec(p) for p in page.results}

    def create_fields(self, obj: str, fields: Sequence[FieldSpec], group: str) -> None:
        """Create ``group`` and every field of ``fields`` that ``obj`` does not have yet."""
        groups = self._call(f"read {obj} property groups", self._groups.get_all_with_http_info, obj)
        if group not in {g.name for g in groups.results}:
            body = {"name": group, "label": group.replace("_", " ").title(), "displayOrder": -1}
            self._call(f"create {obj} group", self._groups.create_with_http_info, obj, body)
        existing = self.describe_fields(obj)
        for spec in fields:
            if spec.name not in existing:
                try:
                    self._call(
                        f"create {obj} property {spec.name}",
                        self._properties.create_with_http_info,
                        obj,
                        property_body(spec, group),
                    )
                except RecordError as exc:
                    # Created meanwhile (a killed run's request that landed late, another
                    # process): the property is there, which is all that was asked.
                    if spec.name not in self.describe_fields(obj):
                        raise exc from None

    # -- reads ------------------------------------------------------------------------------
    def contacts(self, since: datetime | None, properties: Sequence[str]) -> Iterator[CrmRecord]:
        wanted = list(dict.fromkeys(properties))
        for item in self._records("contacts", since, wanted):
            values = item.get("properties") or {}
            yield CrmRecord(
                object="contacts",
                crm_id=str(item["id"]),
                created_at=parse_datetime(item["createdAt"]),
                updated_at=modified_at(item, MODIFIED["contacts"]),
                properties={p: values.get(p) for p in wanted},
            )

    def time_zone(self) -> str:
        """The portal's time zone (account-info), unless the settings name one."""
        if self._time_zone is None:
            self._time_zone = portal_time_zone(self._call, self._properties.api_client)
        return self._time_zone

    def deals(self, since: datetime | None) -> Iterator[CrmDeal]:
        stages = deal_stages(self._call, self._pipelines)
        tz = zone(self.time_zone())
        for chunk in chunks(
            self._records("deals", since, list(DEAL_PROPERTIES)), ASSOCIATION_BATCH
        ):
            ids = [str(d["id"]) for d in chunk]
            buyers = deal_contacts(self._call, self._associations.get_page_with_http_info, ids)
            for item in chunk:
                yield deal_record(item, buyers.get(str(item["id"]), []), stages, tz)

    def _records(self, obj: str, since: datetime | None, properties: list[str]) -> Iterator[Any]:
        properties = list(dict.fromkeys([*properties, MODIFIED[obj]]))
        if since is None:
            return self._all(obj, properties)
        return self._changed(obj, since, properties)

    def _all(self, obj: str, properties: list[str]) -> Iterator[Any]:
        after: str | None = None
        while True:
            page = self._call(
                f"list {obj}",
                self._objects.get_page_with_http_info,
                obj,
                limit=self.settings.page_size,
                after=after,
                properties=properties or None,
                archived=False,
                raw=True,
            )
            yield from page.get("results") or ()
            after = next_after(page)
            if after is None:
                return

    def _search_pages(
        self, obj: str, filters: list[dict[str, str]], sort: str, properties: list[str]
    ) -> Iterator[Any]:
        """The pages of one search, up to where its 10,000-result window ends."""
        after: str | None = None
        while True:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": filters}],
                "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                "properties": properties,
                "limit": SEARCH_PAGE,
            }
            if after is not None:
                body["after"] = after
            page = self._call(
                f"search {obj}",
                self._search.do_search_with_http_info,
                obj,
                body,
                search=True,
                raw=True,
            )
            yield page
            after = next_after(page)
            if after is None or int(after) + SEARCH_PAGE > SEARCH_WINDOW:
                return

    def _changed(self, obj: str, since: datetime, properties: list[str]) -> Iterator[Any]:
        """Records modified at or after ``since``, oldest change first, past 10,000 results.

        A record edited during the walk can come again later with its newer values.
        """
        modified = MODIFIED[obj]
        floor = to_epoch_ms(since)
        at_floor: set[str] = set()  # ids already yielded whose modification time is ``floor``
        while True:
            first: int | None = None
            last_page = None
            gte = {"propertyName": modified, "operator": "GTE", "value": str(floor)}
            for last_page in self._search_pages(obj, [gte], modified, properties):
                for item in last_page.get("results") or ():
                    stamp = self._stamp(item, modified)
                    first = stamp if first is None else first
                    if stamp != floor:
                        floor, at_floor = stamp, set()
                    if item["id"] not in at_floor:
                        at_floor.add(item["id"])
                        yield item
            if last_page is None or next_after(last_page) is None:
                return
            if first == floor:  # the whole window is one millisecond: page through it by id
                yield from self._same_instant(obj, modified, floor, at_floor, properties)
                floor, at_floor = floor + 1, set()

    def _same_instant(
        self, obj: str, modified: str, stamp: int, seen: set[str], properties: list[str]
    ) -> Iterator[Any]:
        last_id = 0
        while True:
            last_page = None
            filters = [
                {"propertyName": modified, "operator": "EQ", "value": str(stamp)},
                {"propertyName": "hs_object_id", "operator": "GT", "value": str(last_id)},
            ]
            for last_page in self._search_pages(obj, filters, "hs_object_id", properties):
                for item in last_page.get("results") or ():
                    last_id = int(item["id"])
                    if item["id"] not in seen:
                        yield item
            if last_page is None or next_after(last_page) is None:
                return

    @staticmethod
    def _stamp(item: Any, modified: str) -> int:
        return to_epoch_ms(modified_at(item, modified))

    def modified_since(self, obj: str, since: datetime) -> set[str]:
        """Ids of ``obj`` records modified at or after ``since`` (one search per 200)."""
        return {str(item["id"]) for item in self._changed(obj, since, [MODIFIED[obj]])}

    def count_modified(self, obj: str, start: datetime, end: datetime) -> int:
        """How many ``obj`` records were last modified in [start, end): one search's total."""
        modified = MODIFIED[obj]
        body = {
            "filterGroups": [{"filters": [
                {"propertyName": modified, "operator": "GTE", "value": str(to_epoch_ms(start))},
                {"propertyName": modified, "operator": "LT", "value": str(to_epoch_ms(end))},
            ]}],
            "properties": [modified],
            "limit": 1,
        }  # fmt: skip
        page = self._call(
            f"count {obj}", self._search.do_search_with_http_info, obj, body, search=True, raw=True
        )
        return int(page["total"])

    def read_values(
        self, obj: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, str | None]]:
        """Current values of ``fields`` per record id (ids HubSpot does not know are left out)."""
        wanted = list(dict.fromkeys(fields))
        values: dict[str, dict[str, str | None]] = {}
        for chunk in chunks(dict.fromkeys(ids), self.max_batch):
            page = self._call(
                f"read {obj}",
                self._batch.read_with_http_info,
                obj,
                {
                    "inputs": [{"id": i} for i in chunk],
                    "properties": wanted,
                    "propertiesWithHistory": [],
                },
                archived=False,
                raw=True,
            )
            for item in page.get("results") or ():
                current = item.get("properties") or {}
                values[str(item["id"])] = {f: current.get(f) for f in wanted}
        return values

    # -- writes -----------------------------------------------------------------------------
    def write(
        self,
        obj: str,
        updates: Sequence[RecordUpdate],
        on_batch: Callable[[list[WriteResult]], None] | None = None,
    ) -> list[WriteResult]:
        """Update records in batches of 100; a failed record or batch does not stop the rest."""
        results: list[WriteResult] = []
        for chunk in chunks(updates, self.max_batch):
            outcome = self._write_batch(obj, chunk)
            results.extend(outcome)
            if on_batch is not None:
                on_batch(outcome)
        return results

    def _write_batch(self, obj: str, chunk: list[RecordUpdate]) -> list[WriteResult]:
        inputs = [
            {"id": u.crm_id, "properties": {k: "" if v is None else v for k, v in u.values.items()}}
            for u in chunk
        ]
        try:
            page = self._call(
                f"update {obj}",
                self._batch.update_with_http_info,
                obj,
                {"inputs": inputs},
                raw=True,
            )
        except RecordError as rejected:  # the whole batch, e.g. a 400: its records fail
            return [WriteResult(u.crm_id, ok=False, error=str(rejected)) for u in chunk]
        failed: dict[str, str] = {}
        unattributed: list[str] = []
        for problem in page.get("errors") or ():
            message = f"{problem.get('category')}: {problem.get('message')}"
            ids = (problem.get("context") or {}).get("ids") or []
            for crm_id in ids:
                failed.setdefault(str(crm_id), message)
            if not ids:
                unattributed.append(message)
        updated = {str(item["id"]) for item in page.get("results") or ()}
        outcome = []
        for update in chunk:
            reason = failed.get(update.crm_id)
            if reason is None and unattributed and update.crm_id not in updated:
                reason = "; ".join(unattributed)
            outcome.append(WriteResult(update.crm_id, ok=reason is None, error=reason or ""))
        return outcome
