"""An unchanged re-sync reads nothing back from the CRM; a record edited there between syncs is
read (and only it), and handled by its fields' policies. The same on HubSpot and Salesforce."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.demo.synthetic import generate
from tests.e2e.crm_loop import Loop, start_loop


def read_back(loop: Loop) -> list[str]:
    """The record ids the write-back read current values of (its batch reads / Id queries)."""
    if loop.probe.crm == "hubspot":
        reads = loop.crm.requests("POST", "/batch/read")
        return [str(i["id"]) for r in reads if "/objects/" in r.path for i in r.json()["inputs"]]
    queries = [r.arg("q") or "" for r in loop.crm.requests("GET", "/query")]
    found = [re.search(r" WHERE Id IN \((.*)\)", q) for q in queries]
    return [i.strip(" '") for m in found if m for i in m.group(1).split(",")]


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def resync_requests(tmp_path: Path, crm: str, contacts: int) -> Iterator[tuple[Loop, int]]:
    company = generate(seed=3, contacts=contacts, visits=contacts * 8, deals=contacts // 4)
    loop = start_loop(tmp_path / f"demo{contacts}", crm, company)
    try:
        loop.sync()
        loop.crm.clear_log()
        _, run = loop.sync()
        assert run.status == "succeeded"
        assert loop.writes() == []
        assert read_back(loop) == []
        yield loop, len(loop.crm.requests())
    finally:
        loop.systems.stop()


def test_an_unchanged_resync_costs_the_same_few_requests_at_any_size(
    tmp_path: Path, crm: str
) -> None:
    counts = []
    for contacts in (40, 160):
        for _, requests in resync_requests(tmp_path, crm, contacts):
            counts.append(requests)
    small, large = counts
    assert large <= small + 2  # a search or query page more, not a read per record
    assert large <= 40


def test_a_record_edited_in_the_crm_is_read_and_handled_by_its_policies(
    tmp_path: Path, crm: str
) -> None:
    for loop, _ in resync_requests(tmp_path, crm, 40):
        first, last = loop.probe.first, loop.probe.last
        record = next(rid for rid, p in loop.crm_state().items() if p[first])
        loop.probe.edit(record, **{first: "Trade show", last: "Edited by a rep"})
        loop.crm.clear_log()
        loop.sync()
        assert read_back(loop) == [record]
        after = loop.crm_state()[record]
        assert after[first] == "Trade show"  # fill_if_empty: a person's value stays
        assert after[last] not in {"Edited by a rep", None}  # overwrite: closedloop's is back
