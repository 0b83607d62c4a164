"""SOQL: the adapter's escaping and the emulator's SOQL subset, through the real client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from adapters.salesforce import emulator_soql as soql
from adapters.salesforce.emulator import Emulator
from adapters.salesforce.soql import soql_datetime, soql_quote

TRICKY = [
    "O'Brien",
    "back\\slash",
    "both \\' mixed",
    "ends with backslash\\",
    "x' OR LastName != '",
    "line\nbreak\ttab",
    'double "quotes"',
    "100% _under_",
    "",
]


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("O'Brien", r"'O\'Brien'"),
        ("a\\b", r"'a\\b'"),
        ("\\'", r"'\\\''"),
        ("x\ny", r"'x\ny'"),
        ('say "hi"', r"'say \"hi\"'"),
        ("plain", "'plain'"),
    ],
)
def test_soql_quote_escapes_quotes_and_backslashes(value: str, literal: str) -> None:
    assert soql_quote(value) == literal


@pytest.mark.parametrize("value", TRICKY)
def test_soql_quote_round_trips_through_the_emulator_parser(value: str) -> None:
    query = soql.parse(f"SELECT Id FROM Lead WHERE LastName = {soql_quote(value)}")
    assert query.where == soql.Compare("LastName", "=", value)


def test_soql_datetime_is_utc_with_z() -> None:
    moment = datetime(2026, 11, 1, 12, 30, 5, 999_000, tzinfo=UTC)
    assert soql_datetime(moment) == "2026-11-01T12:30:05Z"


@pytest.fixture
def org() -> Iterator[Emulator]:
    """A small org with known leads for the SOQL subset tests."""
    with Emulator() as emulator:
        emulator.add_field("Lead", "Score__c", "double")
        rows = [
            ("Ada", "Lovelace", "Web", 10.0, datetime(2026, 11, 1, tzinfo=UTC)),
            ("Grace", "Hopper", "Email", 20.0, datetime(2026, 11, 2, tzinfo=UTC)),
            ("Alan", "Turing", None, 30.0, datetime(2026, 11, 3, tzinfo=UTC)),
            ("Edsger", "Dijkstra", "Web", None, datetime(2026, 11, 4, 12, tzinfo=UTC)),
        ]
        for first, last, source, score, created in rows:
            emulator.add_record(
                "Lead",
                {
                    "FirstName": first,
                    "LastName": last,
                    "Company": "Analytical Engines",
                    "LeadSource": source,
                    "Score__c": score,
                },
                created,
            )
        for value in TRICKY:
            emulator.add_record("Lead", {"LastName": value, "Company": "Tricky"})
        yield emulator


@pytest.fixture
def org_sf(org: Emulator, client_for: Callable[[Emulator], Salesforce]) -> Salesforce:
    return client_for(org)


def _last_names(sf: Salesforce, where: str, tail: str = " ORDER BY LastName") -> list[str]:
    result = sf.query_all(
        f"SELECT LastName FROM Lead WHERE Company = 'Analytical Engines' {where}{tail}"
    )
    return [r["LastName"] for r in result["records"]]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("AND LeadSource = 'web'", ["Dijkstra", "Lovelace"]),  # = ignores case
        ("AND LeadSource != 'Web'", ["Hopper", "Turing"]),  # SOQL: null != 'Web'
        ("AND Score__c < 20", ["Lovelace"]),
        ("AND Score__c <= 20", ["Hopper", "Lovelace"]),
        ("AND Score__c > 20", ["Turing"]),
        ("AND Score__c >= 20.0", ["Hopper", "Turing"]),
        ("AND LeadSource IN ('Email', 'Web')", ["Dijkstra", "Hopper", "Lovelace"]),
        ("AND LeadSource NOT IN ('Email', 'Web')", ["Turing"]),
        ("AND LastName LIKE '%ing'", ["Turing"]),
        ("AND FirstName LIKE 'a_a'", ["Lovelace"]),
        ("AND LeadSource = NULL", ["Turing"]),
        ("AND Score__c != null", ["Hopper", "Lovelace", "Turing"]),
        ("AND IsConverted = FALSE", ["Dijkstra", "Hopper", "Lovelace", "Turing"]),
        ("AND IsConverted = true", []),
        ("AND (LeadSource = 'Email' OR Score__c > 25)", ["Hopper", "Turing"]),
        ("AND NOT (LeadSource = 'Web')", ["Hopper", "Turing"]),
        ("AND CreatedDate >= 2026-11-03T00:00:00Z", ["Dijkstra", "Turing"]),
        ("AND CreatedDate > 2026-11-04T12:30:00+01:00", ["Dijkstra"]),
        ("AND CreatedDate < 2026-11-02T00:00:00.000Z", ["Lovelace"]),
    ],
)
def test_emulator_soql_subset(org_sf: Salesforce, where: str, expected: list[str]) -> None:
    assert _last_names(org_sf, where) == expected


def test_emulator_count_answers_the_rows_number_only(org_sf: Salesforce) -> None:
    where = "Company = 'Analytical Engines' AND CreatedDate >= 2026-11-02T00:00:00Z"
    result = org_sf.query(f"SELECT COUNT() FROM Lead WHERE {where}")
    assert (result["totalSize"], result["done"], result["records"]) == (3, True, [])
    assert org_sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 4 + len(TRICKY)


def test_emulator_order_by_desc_nulls_and_limit(org_sf: Salesforce) -> None:
    assert _last_names(org_sf, "", " ORDER BY Score__c DESC") == [
        "Turing",
        "Hopper",
        "Lovelace",
        "Dijkstra",  # DESC puts nulls last
    ]
    assert _last_names(org_sf, "", " ORDER BY Score__c ASC NULLS LAST LIMIT 2") == [
        "Lovelace",
        "Hopper",
    ]
    assert _last_names(org_sf, "", " ORDER BY LeadSource, LastName DESC") == [
        "Turing",
        "Hopper",
        "Lovelace",
        "Dijkstra",
    ]


def test_emulator_date_literal_on_date_field(org: Emulator, org_sf: Salesforce) -> None:
    org.add_record(
        "Opportunity", {"Name": "A", "StageName": "Prospecting", "CloseDate": "2026-12-01"}
    )
    org.add_record(
        "Opportunity", {"Name": "B", "StageName": "Prospecting", "CloseDate": "2026-12-20"}
    )
    result = org_sf.query("SELECT Name FROM Opportunity WHERE CloseDate > 2026-12-10")
    assert [r["Name"] for r in result["records"]] == ["B"]


@pytest.mark.parametrize("value", TRICKY)
def test_quoted_values_match_exactly_one_record(org_sf: Salesforce, value: str) -> None:
    result = org_sf.query(
        f"SELECT Id, LastName FROM Lead WHERE Company = 'Tricky' AND LastName = {soql_quote(value)}"
    )
    assert [r["LastName"] for r in result["records"]] == [value]


def test_select_returns_canonical_field_names_and_attributes(org_sf: Salesforce) -> None:
    result = org_sf.query("select id, lastname from lead where firstname = 'Ada'")
    (record,) = result["records"]
    assert list(record) == ["attributes", "Id", "LastName"]
    assert record["attributes"]["type"] == "Lead"
    assert record["attributes"]["url"] == f"/services/data/v59.0/sobjects/Lead/{record['Id']}"


@pytest.mark.parametrize(
    ("query", "code", "text"),
    [
        ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY", "unexpected token: <EOF>"),
        ("SELECT Id Lead", "MALFORMED_QUERY", "unexpected token: Lead"),
        ("SELECT Id FROM Lead WHERE LastName = 'unterminated", "MALFORMED_QUERY", "unexpected"),
        ("SELECT Nope__c FROM Lead", "INVALID_FIELD", "No such column 'Nope__c' on entity 'Lead'"),
        ("SELECT Id FROM Lead ORDER BY Nope", "INVALID_FIELD", "No such column 'Nope'"),
        ("SELECT Id FROM Nope__c", "INVALID_TYPE", "sObject type 'Nope__c' is not supported"),
    ],
)
def test_emulator_refuses_bad_queries_like_salesforce(
    org_sf: Salesforce, query: str, code: str, text: str
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        org_sf.query(query)
    assert caught.value.status == 400
    assert caught.value.content[0]["errorCode"] == code
    assert text in caught.value.content[0]["message"]
