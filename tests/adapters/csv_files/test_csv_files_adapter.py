"""Offline CSV source: parsing, identity hashing, stable keys and rejected rows."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adapters.csv_files.adapter import CsvFilesSource, RowError
from connector.kernel.errors import ConfigError
from connector.kernel.identity import email_hash
from connector.kernel.records import IdentityKind, Touchpoint

SINCE = datetime(2026, 11, 1, tzinfo=UTC)
SAMPLES = Path(__file__).parents[3] / "config" / "samples"
TOUCH_HEADER = "email,crm_id,occurred_at,channel,campaign,source,medium,note"
SPEND_HEADER = "platform,campaign_id,campaign,date,cost,currency,clicks,impressions,channel"


def write(tmp_path: Path, name: str, *lines: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def touches(path: Path) -> tuple[CsvFilesSource, list[Touchpoint]]:
    source = CsvFilesSource(CsvFilesSource.Settings(touchpoints_file=path))
    return source, list(source.touchpoints(SINCE))


def test_email_rows_are_hashed_normalised_and_never_kept_raw(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        TOUCH_HEADER,
        '" Ana@Example.COM ",,2026-11-03,Events,Berlin 2026,trade_show,offline,booth',
    )
    _, [touch] = touches(path)
    assert touch.identity_kind is IdentityKind.EMAIL_SHA256
    assert touch.identity_value == email_hash("ana@example.com")
    assert "ana" not in repr(touch).lower()
    assert touch.occurred_at == datetime(2026, 11, 3, tzinfo=UTC)
    assert (
        touch.source,
        touch.channel,
        touch.utm_campaign,
        touch.utm_source,
        touch.utm_medium,
    ) == ("csv_files", "Events", "Berlin 2026", "trade_show", "offline")


def test_crm_id_rows_and_datetimes_with_offsets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        TOUCH_HEADER,
        ",003A000001,2026-11-03T19:30:00+01:00,Outbound Calls,,,,",
        "x@example.com,003A000002,2026-11-04T08:00:00Z,Outbound Calls,,,,",
    )
    _, [a, b] = touches(path)
    assert (a.identity_kind, a.identity_value) == (IdentityKind.CRM_ID, "003A000001")
    assert a.occurred_at == datetime(2026, 11, 3, 18, 30, tzinfo=UTC)
    assert (b.identity_kind, b.identity_value) == (IdentityKind.CRM_ID, "003A000002")


def test_keys_are_stable_across_imports_and_change_with_the_row(tmp_path: Path) -> None:
    row = "ana@example.com,,2026-11-03,Events,Berlin 2026,trade_show,offline,booth"
    first = write(tmp_path, "a.csv", TOUCH_HEADER, row, row.replace("booth", "talk"))
    reordered_header = "occurred_at,channel,email,campaign,source,medium,note"
    second = write(
        tmp_path,
        "b.csv",
        reordered_header,
        "2026-11-03T00:00:00Z,Events, ANA@example.com ,Berlin 2026,trade_show,offline,booth",
    )
    _, [one, changed] = touches(first)
    _, [again] = touches(second)
    assert one.key == again.key
    assert changed.key != one.key
    assert len(one.key) == 32


def test_rejected_rows_are_reported_with_line_and_column_and_the_rest_imported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path,
        "t.csv",
        TOUCH_HEADER,
        "a@example.com,,2026-11-03,Events,,,,",
        "",
        "b@example.com,,2024-13-01,Events,,,,",
        ",,2026-11-03,Events,,,,",
        "not-an-email,,2026-11-03,Events,,,,",
        "c@example.com,,2026-11-03,,,,,",
        "d@example.com,,2026-11-03,Events",
        "e@example.com,,2026-11-05,Webinar,,,,",
    )
    with caplog.at_level(logging.WARNING):
        source, rows = touches(path)
    assert [t.occurred_at.day for t in rows] == [3, 5]
    assert [(e.line, e.column) for e in source.rejected] == [
        (4, "occurred_at"),
        (5, "email"),
        (6, "email"),
        (7, "channel"),
        (8, "(row)"),
    ]
    assert source.rejected[0].message == (
        "line 4, column occurred_at: '2024-13-01' is not a date (expected YYYY-MM-DD or ISO-8601)"
    )
    assert str(source.rejected[0]).startswith(str(path))
    assert all(isinstance(e, RowError) and e.file == path for e in source.rejected)
    assert "5 rows rejected" in caplog.text


def test_rejected_is_reset_per_read(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", TOUCH_HEADER, "x,,2026-11-03,Events,,,,")
    source, _ = touches(path)
    list(source.touchpoints(SINCE))
    assert len(source.rejected) == 1


def test_missing_file_or_header_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.csv: file not found"):
        touches(tmp_path / "nope.csv")
    no_channel = write(tmp_path, "t.csv", "email,occurred_at", "a@example.com,2026-11-03")
    with pytest.raises(ConfigError, match=r"t\.csv: missing required column 'channel'"):
        touches(no_channel)
    no_identity = write(tmp_path, "u.csv", "occurred_at,channel", "2026-11-03,Events")
    with pytest.raises(ConfigError, match="'email or crm_id'"):
        touches(no_identity)
    spend = write(tmp_path, "s.csv", "platform,campaign,date", "print,Ad,2026-11-03")
    source = CsvFilesSource(CsvFilesSource.Settings(spend_file=spend))
    with pytest.raises(ConfigError, match=r"s\.csv: missing required column 'cost'"):
        list(source.spend(SINCE))


def test_spend_rows_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        SPEND_HEADER,
        "trade_show,ts-1,Berlin 2026,2026-11-03,9800.00,eur,,,Events",
        "print,,Holiday box,2026-11-04,12.5,,3,400,",
    )
    source = CsvFilesSource(CsvFilesSource.Settings(spend_file=path, default_currency="gbp"))
    a, b = source.spend(SINCE)
    assert (a.platform, a.campaign_id, a.campaign, a.day, a.cost, a.currency, a.channel) == (
        "trade_show",
        "ts-1",
        "Berlin 2026",
        date(2026, 11, 3),
        9800.0,
        "EUR",
        "Events",
    )
    assert (b.campaign_id, b.currency, b.clicks, b.impressions, b.account) == (
        "Holiday box",
        "GBP",
        3,
        400,
        "",
    )
    assert source.rejected == [] and source.api_calls() == 0


def test_spend_rejects_bad_cells_and_duplicate_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        SPEND_HEADER,
        "print,p-1,Ad,2026-11-03,10,USD,,,",
        "print,p-1,Ad,2026-11-31,10,USD,,,",
        'print,p-1,Ad,2026-11-04,"1,234.50",USD,,,',
        "print,p-1,Ad,2026-11-05,-5,USD,,,",
        "print,p-1,Ad,2026-11-06,5,US,,,",
        "print,p-1,Ad,2026-11-07,5,USD,2.5,,",
        ",p-1,Ad,2026-11-08,5,USD,,,",
        "print,p-1,Ad,2026-11-03,11,USD,,,",
        "print,p-2,Ad 2,2026-11-03,7,USD,,,",
    )
    source = CsvFilesSource(CsvFilesSource.Settings(spend_file=path))
    rows = list(source.spend(SINCE))
    assert [(s.campaign_id, s.cost) for s in rows] == [("p-1", 10.0), ("p-2", 7.0)]
    assert [(e.line, e.column) for e in source.rejected] == [
        (3, "date"),
        (4, "cost"),
        (5, "cost"),
        (6, "currency"),
        (7, "clicks"),
        (8, "platform"),
        (9, "date"),
    ]
    assert "duplicate of line 2" in source.rejected[-1].reason


def test_bom_and_header_case_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "\ufeffEmail,Occurred_At,Channel\na@example.com,2026-11-03,Events\n", encoding="utf-8"
    )
    _, [touch] = touches(path)
    assert touch.channel == "Events"


def test_unset_files_read_nothing() -> None:
    source = CsvFilesSource(CsvFilesSource.Settings())
    assert list(source.touchpoints(SINCE)) == [] and list(source.spend(SINCE)) == []


def test_sample_files_parse_cleanly() -> None:
    source = CsvFilesSource(
        CsvFilesSource.Settings(
            touchpoints_file=SAMPLES / "offline_touchpoints.csv",
            spend_file=SAMPLES / "offline_spend.csv",
        )
    )
    touchpoints = list(source.touchpoints(SINCE))
    spend = list(source.spend(SINCE))
    assert source.rejected == []
    assert len(touchpoints) == 30 and len({t.key for t in touchpoints}) == 30
    assert {t.channel for t in touchpoints} >= {"Events", "Webinar", "Outbound Calls"}
    assert len(spend) == 12
    assert all(t.occurred_at.tzinfo is UTC for t in touchpoints)


def test_settings_validate_currency() -> None:
    with pytest.raises(ValueError, match="3-letter"):
        CsvFilesSource.Settings(default_currency="dollars")
    with pytest.raises(ValueError):
        CsvFilesSource.Settings(unknown=1)


def test_a_byte_that_is_not_utf8_rejects_its_row_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        (TOUCH_HEADER + "\n").encode()
        + b"a@example.com,,2026-11-03,Events,,,,\n"
        + b"caf\xe9@example.com,,2026-11-03,Events,,,,\n"  # Latin-1, not UTF-8
        + "zoë@example.com,,2026-11-04,Webinar,,,,\n".encode()
    )
    source, rows = touches(path)
    assert [t.channel for t in rows] == ["Events", "Webinar"]
    (error,) = source.rejected
    assert (error.line, error.column) == (3, "4")
    assert str(error) == f"{path}:3:4: byte 0xE9 is not UTF-8 (save the file as UTF-8)"


def test_a_header_that_is_not_utf8_is_a_config_error_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"email,occurred_at,ch\xe4nnel\na@example.com,2026-11-03,Events\n")
    with pytest.raises(ConfigError, match=r"t\.csv:1:21: header row: byte 0xE4 is not UTF-8"):
        touches(path)


def test_an_overlong_line_is_a_rejected_row_read_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1 GB line behaves like this 8 MB one against a 64 KB limit: memory stays near the
    limit, not the line."""
    import tracemalloc

    import adapters.csv_files.table as csv_table

    monkeypatch.setattr(csv_table, "MAX_LINE", 1 << 16)
    path = tmp_path / "t.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write(TOUCH_HEADER + "\n" + "a@example.com,,2026-11-03,Events,,,,\n")
        out.write("b@example.com,,2026-11-03,Events," + "x" * (8 << 20) + ",,,\n")
        out.write("c@example.com,,2026-11-04,Webinar,,,,\n")
    tracemalloc.start()
    try:
        source, rows = touches(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [t.channel for t in rows] == ["Events", "Webinar"]
    assert [(e.line, e.reason) for e in source.rejected] == [(3, "line over 65,536 characters")]
    assert peak < 2 << 20


def test_implausible_amounts_and_counts_are_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        SPEND_HEADER,
        "print,1,Ad,2026-11-03,1e308,USD,,,Print",
        "print,2,Ad,2026-11-03,10.5,USD,99999999999999999999999,,Print",
        "print,3,Ad,2026-11-03,10.5,USD,3,,Print",
    )
    source = CsvFilesSource(CsvFilesSource.Settings(spend_file=path))
    assert [s.campaign_id for s in source.spend(SINCE)] == ["3"]
    assert [(e.line, e.column) for e in source.rejected] == [(2, "cost"), (3, "clicks")]
    assert "not a plausible day's spend" in source.rejected[0].reason


def test_every_rejected_row_is_counted_and_the_first_hundred_kept(tmp_path: Path) -> None:
    bad = [f"x{i},,2026-11-03,Events,,,," for i in range(250)]
    path = write(tmp_path, "t.csv", TOUCH_HEADER, *bad, '"unclosed quote' + "y" * 200_000)
    source, rows = touches(path)
    assert rows == []
    assert len(source.rejected) == 100 and source.rejected_count == {path: 251}
    assert [e.line for e in source.rejected[:2]] == [2, 3]


def test_a_configured_file_is_read_whole_so_it_is_the_truth_for_its_stream(
    tmp_path: Path,
) -> None:
    touches_only = CsvFilesSource(CsvFilesSource.Settings(touchpoints_file=tmp_path / "t.csv"))
    assert touches_only.full_refresh == frozenset({"touchpoints"})
    both = CsvFilesSource.Settings(touchpoints_file=tmp_path / "t.csv", spend_file=tmp_path / "s")
    assert CsvFilesSource(both).full_refresh == frozenset({"touchpoints", "spend"})
    assert CsvFilesSource(CsvFilesSource.Settings()).full_refresh == frozenset()
