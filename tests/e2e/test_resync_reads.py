"""An unchanged re-sync reads nothing back from the CRM; a record edited there between syncs is
read (and only it), and handled by its fields' policies; a sync reads back what it wrote, so the
next one reads no record unless one changed, even one the CRM shows late. The same on HubSpot
and Salesforce."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from connector.demo.synthetic import generate
from connector.store import models
from connector.store.writes import get_cursor
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


def test_a_sync_reads_back_what_it_wrote_and_the_next_reads_only_changes(
    tmp_path: Path, crm: str
) -> None:
    company = generate(seed=5, contacts=60, visits=480, deals=15)
    loop = start_loop(tmp_path / "demo", crm, company)
    ctx = loop.context()

    def cursor(stream: str) -> datetime:
        with Session(ctx.engine) as session:
            moment = get_cursor(session, crm, stream)
        assert moment is not None
        return moment

    def modified_from(stream: str) -> int:
        """Records the CRM modified from the stream's cursor on, as its filters compare (SOQL:
        whole seconds, so the cursor's own second is read again)."""
        step, far = ctx.crm.modified_resolution, datetime.now(UTC) + timedelta(days=1)
        start = cursor(stream).replace(microsecond=0) if step.seconds else cursor(stream)
        objects = ctx.crm.person_objects if stream == "contacts" else [ctx.crm.deal_object]
        return sum(ctx.crm.count_modified(obj, start, far) for obj in objects)

    try:
        first, _ = loop.sync()
        assert first.counts["contacts_read_back"] >= len(loop.written_ids()) > 0
        assert first.counts["deals_read_back"] > 0
        expected = {stream: modified_from(stream) for stream in ("contacts", "deals")}
        assert expected == {"contacts": 0, "deals": 0}  # the read back came after every write
        unchanged, run = loop.sync()
        assert run.status == "succeeded" and unchanged.counts.get("records_written", 0) == 0
        assert unchanged.counts["contacts_read"] == expected["contacts"]
        assert unchanged.counts["deals_read"] == expected["deals"]
        assert "contacts_read_back" not in unchanged.counts  # nothing was written

        # A record last modified before the cursor that the last read could not see (the CRM's
        # clock behind closedloop's, its search index late): the minutes before are checked.
        late = loop.probe.add_person(
            "late@example.com", cursor("contacts") - timedelta(minutes=1), None
        )
        after, _ = loop.sync()
        assert after.counts["contacts_read"] >= 1
        with Session(ctx.engine) as session:
            assert late in session.exec(select(models.Contact.crm_id)).all()
    finally:
        ctx.close()
        loop.systems.stop()
