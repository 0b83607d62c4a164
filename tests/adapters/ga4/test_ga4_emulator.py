"""The GA4 emulator on the wire: real client for report semantics, raw HTTP for exact bodies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import (
    DateRange,
    Dimension,
    Filter,
    FilterExpression,
    FilterExpressionList,
    Metric,
    MetricType,
    OrderBy,
    RunReportRequest,
)
from google.api_core.exceptions import TooManyRequests
from google.oauth2.credentials import Credentials

from adapters.ga4.adapter import Ga4Source
from adapters.ga4.emulator import Emulator

NY = ZoneInfo("America/New_York")
REPORT_PATH = "/v1beta/properties/123456:runReport"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as server:
        yield server


@pytest.fixture
def client(emu: Emulator) -> Iterator[BetaAnalyticsDataClient]:
    ga = BetaAnalyticsDataClient(
        credentials=Credentials(token=emu.access_token),  # type: ignore[no-untyped-call]
        transport="rest",
        client_options={"api_endpoint": emu.url},
    )
    yield ga
    ga.transport.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def report(
    client: BetaAnalyticsDataClient,
    dims: list[str],
    mets: list[str],
    start: str = "2026-11-01",
    end: str = "2026-11-30",
    **kw: Any,
) -> dict[tuple[str, ...], list[str]]:
    response = client.run_report(
        RunReportRequest(
            property="properties/123456",
            dimensions=[Dimension(name=d) for d in dims],
            metrics=[Metric(name=m) for m in mets],
            date_ranges=[DateRange(start_date=start, end_date=end)],
            **kw,
        )
    )
    return {
        tuple(v.value for v in row.dimension_values): [v.value for v in row.metric_values]
        for row in response.rows
    }


def seed_mix(emu: Emulator) -> None:
    day = datetime(2026, 11, 10, 14, 5, tzinfo=UTC)
    emu.add_sessions(
        [
            ("a", day, "google", "cpc", "Brand", "/pricing", None, 1, 10.5),
            ("a", day + timedelta(hours=1), "google", "cpc", "Brand", "/pricing", None, 2, 5.25),
            {"client_id": "b", "started_at": day, "source": "Google", "medium": "organic"},
            ("c", day + timedelta(days=1), "newsletter", "email", "nov", "/webinar", "u-3"),
            ("", day, "(direct)", "(none)"),
        ]
    )


def test_aggregates_sessions_by_dimensions(emu: Emulator, client: BetaAnalyticsDataClient) -> None:
    seed_mix(emu)
    rows = report(
        client, ["sessionSource", "sessionMedium"], ["sessions", "keyEvents", "totalRevenue"]
    )
    assert rows == {
        ("google", "cpc"): ["2", "3", "15.75"],
        ("Google", "organic"): ["1", "0", "0"],
        ("newsletter", "email"): ["1", "0", "0"],
        ("(direct)", "(none)"): ["1", "0", "0"],
    }
    assert report(client, [], ["conversions"]) == {(): ["3"]}


def test_time_dimensions_are_in_the_property_time_zone(
    emu: Emulator, client: BetaAnalyticsDataClient
) -> None:
    emu.add_session("x", datetime(2026, 11, 11, 4, 30, tzinfo=UTC), "google", "organic")
    rows = report(client, ["date", "dateHour", "dateHourMinute"], ["sessions"])
    assert rows == {("20261110", "2026111023", "202611102330"): ["1"]}
    assert report(client, ["date"], ["sessions"], start="2026-11-11", end="2026-11-11") == {}


def test_custom_dimensions_and_channel_group(
    emu: Emulator, client: BetaAnalyticsDataClient
) -> None:
    seed_mix(emu)
    rows = report(
        client,
        ["customUser:ga_client_id", "customUser:user_id", "sessionDefaultChannelGroup"],
        ["sessions"],
    )
    assert rows == {
        ("a", "(not set)", "Paid Search"): ["2"],
        ("b", "(not set)", "Organic Search"): ["1"],
        ("c", "u-3", "Email"): ["1"],
        ("(not set)", "(not set)", "Direct"): ["1"],
    }


def test_relative_date_ranges(emu: Emulator, client: BetaAnalyticsDataClient) -> None:
    now = datetime.now(NY).replace(hour=12, minute=0)
    for days in (0, 1, 5, 40):
        emu.add_session(f"d{days}", now - timedelta(days=days), "google", "organic")
    ids = ["customUser:ga_client_id"]

    def keys(start: str, end: str) -> set[str]:
        return {key[0] for key in report(client, ids, ["sessions"], start=start, end=end)}

    assert keys("today", "today") == {"d0"}
    assert keys("yesterday", "yesterday") == {"d1"}
    assert keys("7daysAgo", "today") == {"d0", "d1", "d5"}
    assert keys("30daysAgo", "2daysAgo") == {"d5"}


def test_several_date_ranges_add_the_date_range_dimension(
    emu: Emulator, client: BetaAnalyticsDataClient
) -> None:
    seed_mix(emu)
    response = client.run_report(
        RunReportRequest(
            property="properties/123456",
            dimensions=[Dimension(name="sessionMedium")],
            metrics=[Metric(name="sessions")],
            date_ranges=[
                DateRange(start_date="2026-11-10", end_date="2026-11-10"),
                DateRange(start_date="2026-11-11", end_date="2026-11-11", name="next"),
            ],
        )
    )
    assert [h.name for h in response.dimension_headers] == ["sessionMedium", "dateRange"]
    rows = {tuple(v.value for v in r.dimension_values) for r in response.rows}
    assert ("email", "next") in rows and ("cpc", "date_range_0") in rows
    assert ("email", "date_range_0") not in rows


def test_dimension_filters(emu: Emulator, client: BetaAnalyticsDataClient) -> None:
    seed_mix(emu)
    dims, mets = ["customUser:ga_client_id"], ["sessions"]

    def ids(expression: FilterExpression) -> set[str]:
        rows = report(client, dims, mets, dimension_filter=expression)
        return {key[0] for key in rows}

    def string(field: str, value: str, match: Any, sensitive: bool = False) -> FilterExpression:
        spec = Filter.StringFilter(value=value, match_type=match, case_sensitive=sensitive)
        return FilterExpression(filter=Filter(field_name=field, string_filter=spec))

    match = Filter.StringFilter.MatchType
    assert ids(string("sessionSource", "google", match.EXACT)) == {"a", "b"}
    assert ids(string("sessionSource", "google", match.EXACT, sensitive=True)) == {"a"}
    assert ids(string("landingPage", "/pri", match.BEGINS_WITH)) == {"a"}
    assert ids(string("sessionMedium", "^(cpc|email)$", match.FULL_REGEXP)) == {"a", "c"}
    assert ids(string("sessionCampaignName", "ran", match.CONTAINS)) == {"a"}
    in_list = Filter.InListFilter(values=["email", "ORGANIC"])
    assert ids(FilterExpression(filter=Filter(field_name="sessionMedium", in_list_filter=in_list)))
    both = FilterExpression(
        and_group=FilterExpressionList(
            expressions=[
                string("sessionSource", "google", match.EXACT),
                FilterExpression(not_expression=string("sessionMedium", "cpc", match.EXACT)),
            ]
        )
    )
    assert ids(both) == {"b"}


def test_order_and_paging(emu: Emulator, client: BetaAnalyticsDataClient) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    emu.add_sessions((f"id{i:02d}", start + timedelta(hours=i), "s", "m") for i in range(12))
    by_id_desc = [
        OrderBy(
            dimension=OrderBy.DimensionOrderBy(dimension_name="customUser:ga_client_id"), desc=True
        )
    ]
    seen: list[str] = []
    offset = 0
    while True:
        response = client.run_report(
            RunReportRequest(
                property="properties/123456",
                dimensions=[Dimension(name="customUser:ga_client_id")],
                metrics=[Metric(name="sessions")],
                date_ranges=[DateRange(start_date="2026-11-01", end_date="today")],
                order_bys=by_id_desc,
                limit=5,
                offset=offset,
            )
        )
        assert response.row_count == 12
        seen += [row.dimension_values[0].value for row in response.rows]
        offset += len(response.rows)
        if offset >= response.row_count:
            break
    assert seen == [f"id{i:02d}" for i in reversed(range(12))]


def test_metric_headers_and_enum_encoding(emu: Emulator, http: requests.Session) -> None:
    body = {
        "metrics": [{"name": "sessions"}, {"name": "keyEvents"}, {"name": "totalRevenue"}],
        "dateRanges": [{"startDate": "2026-11-01", "endDate": "2026-11-30"}],
    }
    auth = {"Authorization": f"Bearer {emu.access_token}"}
    as_ints = http.post(
        emu.url + REPORT_PATH, params={"$alt": "json;enum-encoding=int"}, json=body, headers=auth
    ).json()
    as_names = http.post(emu.url + REPORT_PATH, json=body, headers=auth).json()
    assert [h["type"] for h in as_ints["metricHeaders"]] == [1, 2, 9]
    assert [h["type"] for h in as_names["metricHeaders"]] == [
        "TYPE_INTEGER",
        "TYPE_FLOAT",
        "TYPE_CURRENCY",
    ]
    assert "rows" not in as_ints and as_ints["rowCount"] == 0
    assert as_ints["metadata"] == {"currencyCode": "USD", "timeZone": "America/New_York"}
    assert MetricType(as_ints["metricHeaders"][2]["type"]) is MetricType.TYPE_CURRENCY


def test_unknown_dimension_is_invalid_argument(emu: Emulator, http: requests.Session) -> None:
    body = {
        "dimensions": [{"name": "customUser:crm_id"}],
        "metrics": [{"name": "sessions"}],
        "dateRanges": [{"startDate": "7daysAgo", "endDate": "today"}],
    }
    response = http.post(
        emu.url + REPORT_PATH, json=body, headers={"Authorization": "Bearer ga-demo-token"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": 400,
            "message": "Field customUser:crm_id is not a valid dimension. For a list of valid "
            "dimensions and metrics, see "
            "https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema ",
            "status": "INVALID_ARGUMENT",
        }
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"dimensions": [{"name": "date"}] * 10}, "limited to 9 dimensions"),
        ({"metrics": [{"name": "sessions"}] * 11}, "limited to 10 metrics"),
        ({"metrics": [{"name": "adCost"}]}, "adCost is not a valid metric"),
        ({"dateRanges": [{"startDate": "2026-11-05", "endDate": "2026-11-01"}]}, "date range"),
        ({"dateRanges": [{"startDate": "last week", "endDate": "today"}]}, "Invalid date"),
        ({"dateRanges": []}, "at least one date range"),
    ],
)
def test_invalid_requests(
    emu: Emulator, http: requests.Session, body: dict[str, Any], fragment: str
) -> None:
    request = {"dateRanges": [{"startDate": "7daysAgo", "endDate": "today"}], **body}
    response = http.post(
        emu.url + REPORT_PATH, json=request, headers={"Authorization": "Bearer ga-demo-token"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert fragment in response.json()["error"]["message"]


def test_auth_and_permission_errors(emu: Emulator, http: requests.Session) -> None:
    missing = http.get(emu.url + "/v1beta/properties/123456/metadata")
    wrong = http.get(
        emu.url + "/v1beta/properties/123456/metadata", headers={"Authorization": "Bearer nope"}
    )
    other = http.get(
        emu.url + "/v1beta/properties/42/metadata",
        headers={"Authorization": "Bearer ga-demo-token"},
    )
    assert (missing.status_code, wrong.status_code, other.status_code) == (401, 401, 403)
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    assert "missing required authentication credential" in missing.json()["error"]["message"]
    assert wrong.json()["error"]["message"].startswith(
        "Request had invalid authentication credentials."
    )
    assert "WWW-Authenticate" in wrong.headers
    assert other.json()["error"]["status"] == "PERMISSION_DENIED"


def test_metadata_lists_custom_dimensions(emu: Emulator, client: BetaAnalyticsDataClient) -> None:
    metadata = client.get_metadata(name="properties/123456/metadata")
    assert metadata.name == "properties/123456/metadata"
    custom = {d.api_name for d in metadata.dimensions if d.custom_definition}
    assert custom == {"customUser:ga_client_id", "customUser:user_id"}
    assert {"dateHourMinute", "sessionSource", "landingPage"} <= {
        d.api_name for d in metadata.dimensions
    }
    key_events = next(m for m in metadata.metrics if m.api_name == "keyEvents")
    assert list(key_events.deprecated_api_names) == ["conversions"]


def test_property_quota_is_reported_and_enforced(client: BetaAnalyticsDataClient) -> None:
    with Emulator(tokens_per_day=3) as server:
        server.tokens_per_hour = server.tokens_per_project_per_hour = 100
        ga = BetaAnalyticsDataClient(
            credentials=Credentials(token=server.access_token),  # type: ignore[no-untyped-call]
            transport="rest",
            client_options={"api_endpoint": server.url},
        )
        request = RunReportRequest(
            property="properties/123456",
            metrics=[Metric(name="sessions")],
            date_ranges=[DateRange(start_date="7daysAgo", end_date="today")],
            return_property_quota=True,
        )
        quotas = [ga.run_report(request).property_quota for _ in range(3)]
        assert [q.tokens_per_day.remaining for q in quotas] == [2, 1, 0]
        assert quotas[0].tokens_per_day.consumed == 1
        with pytest.raises(TooManyRequests, match="tokens per day"):
            ga.run_report(request)
        ga.transport.close()  # type: ignore[no-untyped-call]


def test_rate_limit_answers_resource_exhausted(http: requests.Session) -> None:
    with Emulator(rate_limit=(2, 60)) as server:
        url = server.url + "/v1beta/properties/123456/metadata"
        auth = {"Authorization": "Bearer ga-demo-token"}
        statuses = [http.get(url, headers=auth).status_code for _ in range(3)]
        last = http.get(url, headers=auth).json()
    assert statuses == [200, 200, 429]
    assert last["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_seed_sample_and_settings(emu: Emulator, client: BetaAnalyticsDataClient) -> None:
    emu.seed_sample()
    rows = report(client, ["customUser:ga_client_id", "date"], ["sessions"], "2026-10-01", "today")
    identified = [key for key in rows if key[0] != "(not set)"]
    assert len(identified) == 30
    assert all("20261020" <= day <= "20261120" for _, day in rows)
    settings = Ga4Source.Settings(**emu.adapter_settings(valid_token=False))
    assert settings.access_token is not None
    assert settings.access_token.get_secret_value() != emu.access_token


def test_a_large_report_comes_back_whole_and_ordered(emu: Emulator, http: requests.Session) -> None:
    start = datetime(2026, 10, 20, tzinfo=UTC)
    emu.add_sessions(
        (f"{i}.1", start + timedelta(minutes=2 * i), "google", "cpc", f"c{i % 7}", "/")
        for i in range(20_000)
    )
    names = ["customUser:ga_client_id", "dateHourMinute", "sessionSource", "sessionMedium"]
    body: dict[str, Any] = {
        "dimensions": [{"name": name} for name in names],
        "metrics": [{"name": "sessions"}],
        "dateRanges": [{"startDate": "2026-10-01", "endDate": "today"}],
        "orderBys": [{"dimension": {"dimensionName": name}} for name in names],
        "limit": "250000",
    }
    response = http.post(
        emu.url + REPORT_PATH, json=body, headers={"Authorization": "Bearer ga-demo-token"}
    )
    rows = response.json()["rows"]
    assert len(rows) == 20_000
    assert rows[0]["dimensionValues"][0] == {"value": "0.1"}
