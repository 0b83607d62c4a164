"""``closedloop paths``: ChannelAttribution path tables in, per-model channel credit out."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from connector.attribution.path_table import _name_codes, read_path_table
from connector.attribution.paths import PATH_MODELS, attribute_paths, paths_report
from connector.kernel.errors import ConfigError

HEADER = "path,total_conversions,total_conversion_value,total_null\n"


def write(tmp_path: Path, text: str, name: str = "paths.csv", newline: str = "\n") -> Path:
    file = tmp_path / name
    file.write_bytes(text.replace("\n", newline).encode())
    return file


def rows_of(report: str) -> dict[tuple[str, str], tuple[float, float]]:
    reader = csv.DictReader(io.StringIO(report))
    assert reader.fieldnames == ["model", "channel", "conversions", "value"]
    return {
        (r["model"], r["channel"]): (float(r["conversions"]), float(r["value"])) for r in reader
    }


def test_report_by_hand(tmp_path: Path) -> None:
    file = write(tmp_path, HEADER + "A > B > A,2,100,1\nB,1,30,3\nC>A,0,0,5\n")
    out = rows_of(paths_report(file, ["first_touch", "last_touch", "linear", "position_based"]))
    assert out[("first_touch", "A")] == (2, 100) and out[("first_touch", "B")] == (1, 30)
    assert out[("last_touch", "A")] == (2, 100) and out[("first_touch", "C")] == (0, 0)
    # linear counts repeated touches: A gets 2/3 of the first row
    assert out[("linear", "A")] == pytest.approx((4 / 3, 200 / 3), abs=1e-6)
    assert out[("linear", "B")] == pytest.approx((2 / 3 + 1, 100 / 3 + 30), abs=1e-6)
    # U-shape over A > B > A: 0.4 + 0.4 to A, 0.2 to B
    assert out[("position_based", "A")] == pytest.approx((1.6, 80), abs=1e-6)
    assert list(out)[:3] == [("first_touch", "A"), ("first_touch", "B"), ("first_touch", "C")]


def test_markov_splits_totals_by_exact_removal_effects(tmp_path: Path) -> None:
    # the chain of test_first_order_by_hand: removal effects A 1/3, B 1 -> 1/4 and 3/4
    file = write(tmp_path, HEADER + "A>B,1,100,0\nA,0,0,1\nB,1,60,1\n")
    out = rows_of(paths_report(file, ["markov"]))
    assert out[("markov", "A")] == pytest.approx((0.5, 40), abs=1e-6)
    assert out[("markov", "B")] == pytest.approx((1.5, 120), abs=1e-6)


def test_optional_columns_extra_columns_and_spaces(tmp_path: Path) -> None:
    file = write(tmp_path, "id,total_conversions, Path \n1,3, Email >  Search  >>\n2,1,Email\n")
    out = rows_of(paths_report(file, ["last_touch", "markov", "shapley"]))
    assert out[("last_touch", "Search")] == (3, 0) and out[("last_touch", "Email")] == (1, 0)
    assert sum(v[0] for (m, _), v in out.items() if m == "shapley") == pytest.approx(4)
    assert out[("shapley", "Search")] == pytest.approx((1.5, 0))


def test_semicolon_files_custom_separator_and_direct(tmp_path: Path) -> None:
    file = write(tmp_path, "path;total_conversions\nAds|Direct;2\nDirect|Direct;1\n")
    out = rows_of(paths_report(file, ["last_non_direct", "last_touch"], sep="|"))
    assert out[("last_non_direct", "Ads")] == (2, 0)
    assert out[("last_non_direct", "Direct")] == (1, 0)
    assert out[("last_touch", "Direct")] == (3, 0)


def random_table(seed: int, rows: int, channels: list[str]) -> list[tuple[str, int, float, int]]:
    rng = np.random.default_rng(seed)
    table = []
    for _ in range(rows):
        path = rng.choice(channels, int(rng.integers(1, 6)), p=None)
        conv = int(rng.integers(0, 3))
        null = int(rng.integers(0 if conv else 1, 5))
        table.append((" > ".join(path), conv, round(conv * float(rng.uniform(10, 200)), 2), null))
    return table


def test_quoted_and_crlf_files_read_like_plain_ones(tmp_path: Path) -> None:
    table = random_table(1, 300, ["Paid Search", "Social", "E-mail, newsletter", "Référent"])
    plain_rows = [r for r in table if "," not in r[0]]
    plain = write(tmp_path, HEADER + "".join(f"{p},{c},{v},{n}\n" for p, c, v, n in plain_rows))
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(HEADER.strip().split(","))
    writer.writerows(plain_rows)
    quoted = write(tmp_path, buffer.getvalue(), "quoted.csv", newline="\r\n")
    models = ["first_touch", "linear", "markov", "shapley"]
    assert paths_report(plain, models) == paths_report(quoted, models)
    # a channel name holding the delimiter needs quotes and is read through the csv module
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([HEADER.strip().split(","), *table])
    report = rows_of(paths_report(write(tmp_path, buffer.getvalue(), "comma.csv"), models))
    assert ("linear", "E-mail, newsletter") in report and ("linear", "Référent") in report


def test_crlf_files_take_the_array_scanner_with_the_same_result(tmp_path: Path) -> None:
    table = random_table(3, 400, ["a", "Organic Search", "Paid Social"])
    text = HEADER + "".join(f"{p},{c},{v},{n}\n" for p, c, v, n in table)
    lf = read_path_table(write(tmp_path, text))
    models = ["first_touch", "linear", "markov"]
    expected = paths_report(write(tmp_path, text), models)
    for name, body in (
        ("crlf.csv", text.replace("\n", "\r\n")),
        ("no-final-newline.csv", text.replace("\n", "\r\n").removesuffix("\r\n")),
    ):
        crlf = read_path_table(write(tmp_path, body, name))
        assert len(crlf.offsets) == len(lf.offsets) == 401  # one entry per row: the scanner
        assert crlf.channels == lf.channels
        assert np.array_equal(crlf.channel, lf.channel)
        assert np.array_equal(crlf.conversions, lf.conversions)
        assert paths_report(write(tmp_path, body, name), models) == expected
    # a lone CR in the body is not a CRLF file: the csv module reads it, same numbers
    lines = text.splitlines(keepends=True)
    mixed = "".join([*lines[:5], lines[5].replace("\n", "\r"), *lines[6:]])
    assert (
        rows_of(paths_report(write(tmp_path, mixed, "mixed.csv"), models)).keys()
        == rows_of(expected).keys()
    )


def test_scanner_and_csv_module_agree(tmp_path: Path) -> None:
    table = random_table(2, 500, ["a", "Organic Search", "Paid Social Media Campaign 2026"])
    text = HEADER + "".join(f"{p},{c},{v},{n}\n" for p, c, v, n in table)
    fast = read_path_table(write(tmp_path, text))
    slow = read_path_table(write(tmp_path, text.replace(",0,0.0,", ",0,0e0,"), "slow.csv"))
    assert len(fast.offsets) == 501  # the array scanner keeps one entry per row
    assert len(slow.offsets) < 501  # the csv module path merges repeated paths
    for field in ("conversions", "value", "null"):
        assert getattr(fast, field).sum() == pytest.approx(getattr(slow, field).sum())
    for model in PATH_MODELS:
        for ours, theirs in zip(
            attribute_paths(fast, model), attribute_paths(slow, model), strict=True
        ):
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_separator_inside_other_columns(tmp_path: Path) -> None:
    text = "note,path,total_conversions\nx > y,A > B,1\n>>,B,2\n"
    table = read_path_table(write(tmp_path, text))
    assert table.channels == ("A", "B") and table.offsets.tolist() == [0, 2, 3]


def test_name_key_collisions_fall_back_to_the_csv_module() -> None:
    prime = 1099511628211
    w0, w1 = int.from_bytes(b"AAAAAAAA", "little"), int.from_bytes(b"BBBBBBBB", "little")
    twin = (w0 + 1).to_bytes(8, "little") + ((w1 - prime) % 2**64).to_bytes(8, "little")
    buf = np.frombuffer(b"AAAAAAAABBBBBBBB" + twin + bytes(300), dtype=np.uint8)
    begin, length = np.array([0, 16]), np.array([16, 16])
    assert _name_codes(buf, begin, length) is None
    assert _name_codes(buf, begin[:1], length[:1]) == (np.array([0]), ("AAAAAAAABBBBBBBB",))


def test_formats(tmp_path: Path) -> None:
    file = write(tmp_path, HEADER + "A>B,1,10.5,0\n")
    records = json.loads(paths_report(file, ["linear"], fmt="json"))
    assert records == [
        {"model": "linear", "channel": "A", "conversions": 0.5, "value": 5.25},
        {"model": "linear", "channel": "B", "conversions": 0.5, "value": 5.25},
    ]
    table = paths_report(file, ["linear"], fmt="table").splitlines()
    assert table[0].split() == ["model", "channel", "conversions", "value"]
    assert table[1].split() == ["linear", "A", "0.5", "5.25"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,conversions\nA,1\n", r"paths.csv:1: missing column 'total_conversions'"),
        ("total_conversions\n1\n", r"paths.csv:1: missing column 'path'"),
        (HEADER + "A,1,2,0\nB,x,2,0\n", r"paths.csv:3: column 2 \(total_conversions\): 'x'"),
        (HEADER + "A,1,2,0\nB,1,2\n", r"paths.csv:3: expected 4 fields, found 3"),
        (HEADER + "A,1,2,0\nB,1,-2,0\n", r"paths.csv:3: column 3 \(total_conversion_value\)"),
        (HEADER + "A,1,2,0\n\nB,1,nan,0\n", r"paths.csv:4: column 3 .*finite number"),
        (HEADER + "A,1,2,0\n > ,1,2,0\n", r"paths.csv:3: column 'path' holds no channel"),
        (HEADER + "A,1,2,0\nB,,2,0\n", r"paths.csv:3: column 2 \(total_conversions\): empty"),
        (HEADER + 'A,1,2,0\n"B,1,2,0\n', r"paths.csv:\d: "),
    ],
)
def test_bad_input_names_file_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        paths_report(write(tmp_path, text), ["linear"])


def test_header_only_gives_an_empty_report(tmp_path: Path) -> None:
    file = write(tmp_path, "path,total_conversions\n")
    assert (
        paths_report(file, ["linear", "markov", "shapley"]) == "model,channel,conversions,value\n"
    )


def test_blank_optional_cells_count_as_zero(tmp_path: Path) -> None:
    out = rows_of(paths_report(write(tmp_path, HEADER + "A,1,,\nB,1,5,\n"), ["first_touch"]))
    assert out[("first_touch", "A")] == (1, 0) and out[("first_touch", "B")] == (1, 5)


def test_file_and_encoding_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.csv: cannot read"):
        paths_report(tmp_path / "missing.csv", ["linear"])
    file = tmp_path / "latin1.csv"
    file.write_bytes(HEADER.encode() + "Référent,1,2,0\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.csv:2: not UTF-8"):
        paths_report(file, ["linear"])


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["time_decay"], "needs touch timestamps"),
        (["w_shaped"], "lead- and opportunity-creation"),
        (["linear", "magic"], "unknown model 'magic'"),
        ([""], "no model given"),
    ],
)
def test_models_a_path_table_cannot_serve(tmp_path: Path, models: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        paths_report(write(tmp_path, HEADER + "A,1,1,1\n"), models)


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown format 'xml'"):
        paths_report(write(tmp_path, HEADER + "A,1,1,1\n"), ["linear"], fmt="xml")


# --- against ChannelAttribution ------------------------------------------------------------

MARKOV_TOLERANCE = 0.025  # of the total: ChannelAttribution simulates (5 % convergence rule,
# walks cut at the longest observed path); the exact values match a long simulation closely.


def channel_attribution():  # type: ignore[no-untyped-def]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a banner on import
            import ChannelAttribution
            import pandas
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"ChannelAttribution must be installed in CI: {exc}")
        pytest.skip(f"ChannelAttribution not installed: {exc}")
    return ChannelAttribution, pandas


def test_heuristics_equal_and_markov_close_to_channel_attribution(tmp_path: Path) -> None:
    ca, pd = channel_attribution()
    table = random_table(3, 4000, ["Search", "Social", "Email", "Display", "Direct", "Referral"])
    file = write(tmp_path, HEADER + "".join(f"{p},{c},{v},{n}\n" for p, c, v, n in table))
    frame = pd.read_csv(file)
    ours = read_path_table(file)
    with contextlib.redirect_stdout(io.StringIO()):
        heuristics = ca.heuristic_models(
            frame, "path", "total_conversions", var_value="total_conversion_value", flg_pro=False
        ).set_index("channel_name")
        markov = ca.markov_model(
            frame,
            "path",
            "total_conversions",
            var_value="total_conversion_value",
            var_null="total_null",
            verbose=False,
            flg_pro=False,
        ).set_index("channel_name")
    assert list(heuristics.index) == list(ours.channels)
    for model, theirs in [("first_touch", "first_touch"), ("last_touch", "last_touch"),
                          ("linear", "linear_touch")]:  # fmt: skip
        conversions, value = attribute_paths(ours, model)
        np.testing.assert_allclose(conversions, heuristics[f"{theirs}_conversions"], rtol=1e-12)
        np.testing.assert_allclose(value, heuristics[f"{theirs}_value"], rtol=1e-12)
    conversions, value = attribute_paths(ours, "markov")
    expected = markov.loc[list(ours.channels)]
    total_conv, total_value = frame.total_conversions.sum(), frame.total_conversion_value.sum()
    assert conversions.sum() == pytest.approx(total_conv)
    assert value.sum() == pytest.approx(total_value)
    assert np.max(np.abs(conversions - expected.total_conversions)) < MARKOV_TOLERANCE * total_conv
    assert np.max(np.abs(value - expected.total_conversion_value)) < MARKOV_TOLERANCE * total_value
