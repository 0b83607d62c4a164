"""The HTML report: self-contained, escaped, and its charts drawn by headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from connector.report.closed_loop import ClosedLoopReport, Row
from connector.report.html import Money, multiple, percent, render_html, script_json

EVIL = '</script><img src=x onerror="document.title=\'pwned\'"> & "q"'
MODELS = ["first_touch", "last_touch", "linear"]


def row(name: str, spend: float, revenue: float, **kw: Any) -> Row:
    """A channel or campaign; the other models get slightly different revenue."""
    revenues = {"first_touch": revenue * 0.9, "last_touch": revenue * 1.1, "linear": revenue}
    return Row(name, spend=spend, revenue=revenues, **kw)


def report_dict() -> dict[str, Any]:
    channels = [
        row("Organic Search", 0, 150_000, touches=6000, leads=80, opportunities=30,
            won_deals=12.5, pipeline=20_000),
        row("Paid Search", 20_000, 90_000, touches=3000, leads=40, opportunities=20,
            won_deals=8, pipeline=50_000),
        row("Paid Social", 15_000, 9_000, touches=2500, leads=30, opportunities=12,
            won_deals=3, pipeline=5_000),
        row("Email", 0, 0, touches=1000, leads=10),
    ]  # fmt: skip
    campaigns = [
        row("brand-search", 8_000, 60_000, channel="Paid Search", platforms={"google_ads"},
            touches=1200, leads=20, opportunities=10, won_deals=4),
        row("generic", 12_000, 30_000, channel="Paid Search", platforms={"google_ads"}),
        row(EVIL, 5_000, 7_000, channel="Paid Social", platforms={"meta"}),
        row("retargeting", 10_000, 2_000, channel="Paid Social", platforms={"meta"}),
        row("newsletter", 0, 4_000, channel="Email"),
    ]  # fmt: skip
    stages = {
        "qualifiedtobuy": {"Paid Search": 30_000.0, "Organic Search": 20_000.0},
        "contractsent": {"Paid Search": 20_000.0, "Paid Social": 5_000.0},
    }
    report = ClosedLoopReport(
        MODELS, "linear", "USD", date(2026, 10, 1), date(2026, 10, 31),
        channels, campaigns, stages, unmatched_spend=1234.56,
    )  # fmt: skip
    return report.to_dict()


def empty_dict() -> dict[str, Any]:
    report = ClosedLoopReport(["linear"], "linear", "EUR", None, None, [], [], {}, 0.0)
    return report.to_dict()


# -- a small DOM built from Chromium's dump (stdlib only) --------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.iter()

    def all(self, tag: str, **attrs: str) -> list[Node]:
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [
            n for n in self.iter()
            if n.tag == tag and all(n.attrs.get(k) == v for k, v in want.items())
        ]  # fmt: skip

    def one(self, tag: str, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    tree = _Tree()
    tree.feed(html)
    tree.close()
    return tree.root


# -- headless Chromium ------------------------------------------------------------------------


def chromium() -> str:
    for candidate in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        path = shutil.which(candidate)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is required in CI for the HTML report test: apt-get install chromium")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def run_chromium(page: Path, profile: Path, *args: str) -> str:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}", *args, page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(data: dict[str, Any], tmp: Path) -> Node:
    page = tmp / "report.html"
    page.write_text(render_html(data), encoding="utf-8")
    dom = parse(run_chromium(page, tmp / "profile", "--dump-dom"))
    html = dom.one("html")
    assert html.attrs.get("data-rendered") == "ok", "the chart script did not finish"
    return dom


@pytest.fixture(scope="module")
def dom(tmp_path_factory: pytest.TempPathFactory) -> Node:
    return dump_dom(report_dict(), tmp_path_factory.mktemp("html-report"))


def chart(dom: Node, name: str) -> Node:
    return dom.one("svg", data_chart=name)


def cells(table: Node, name: str) -> list[str]:
    """The texts of the table row whose first cell starts with `name` (then small print)."""
    for tr in table.all("tr"):
        tds = tr.all("td")
        if tds and tds[0].children and tds[0].children[0] == name:
            return [td.text() for td in tds]
    raise AssertionError(f"no row {name!r}")


# -- without a browser ------------------------------------------------------------------------


def test_embedded_json_cannot_close_the_script_element() -> None:
    text = script_json({"campaign": EVIL, "roi": float("nan")})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"campaign": EVIL, "roi": None}


def test_page_loads_nothing_and_escapes_user_text() -> None:
    page = render_html(report_dict())
    assert not re.search(r"https?://", page)
    assert not re.search(r"<[^>]*\s(src|href)\s*=|@import|url\(", page)
    assert "default-src 'none'" in page
    # Only the page's own two script elements open and close; the campaign name is inert text.
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "&lt;/script&gt;&lt;img src=x onerror=" in page


def test_number_formats() -> None:
    usd, chf = Money.of("usd"), Money.of("CHF")
    assert usd(1_234_567.4) == "$1,234,567" and usd(None) == "–"
    assert chf(-1234, 2) == "-1,234.00 CHF" and usd(-0.001) == "$0"
    assert percent(-0.4) == "-40.0%" and percent(12.3456) == "1,234.6%" and percent(None) == "–"
    assert multiple(4.5) == "4.50x" and multiple(None) == "–"


# -- in Chromium ------------------------------------------------------------------------------


def test_funnel_chart(dom: Node) -> None:
    svg = chart(dom, "funnel")
    rects = svg.all("rect")
    assert [r.attrs["data-label"] for r in rects] == [
        "touches", "leads", "opportunities", "won_deals", "revenue", "spend",
    ]  # fmt: skip
    assert [float(r.attrs["data-value"]) for r in rects] == [12500, 160, 62, 23.5, 249000, 35000]
    widths = [float(r.attrs["width"]) for r in rects[:4]]
    assert widths == sorted(widths, reverse=True) and widths[-1] > 0
    assert svg.attrs["role"] == "img" and svg.one("title", id="funnel-title").text() == "Funnel"
    assert svg.attrs["aria-labelledby"] == "funnel-title funnel-desc"
    text = svg.text()
    assert "1.3%" in text and "38.8%" in text and "37.9%" in text  # stage conversion rates


def test_revenue_and_spend_by_channel_chart(dom: Node) -> None:
    svg = chart(dom, "revenue-spend")
    names = ["Organic Search", "Paid Search", "Paid Social", "Email"]
    revenue = svg.all("rect", data_series="revenue")
    spend = svg.all("rect", data_series="spend")
    assert [r.attrs["data-label"] for r in revenue] == names
    assert [r.attrs["data-label"] for r in spend] == names
    assert [float(r.attrs["data-value"]) for r in revenue] == [150000, 90000, 9000, 0]
    assert [float(r.attrs["data-value"]) for r in spend] == [0, 20000, 15000, 0]
    assert float(revenue[0].attrs["width"]) > float(revenue[1].attrs["width"]) > 0
    assert "Revenue (Linear)" in svg.text() and "$150K" in svg.text()


def test_roi_by_campaign_chart(dom: Node) -> None:
    svg = chart(dom, "roi-campaign")
    bars = svg.all("rect")
    assert [b.attrs["data-label"] for b in bars] == ["brand-search", "generic", EVIL, "retargeting"]
    assert [b.attrs["data-sign"] for b in bars] == ["positive"] * 3 + ["negative"]
    assert [b.attrs["class"] for b in bars] == ["roi-pos"] * 3 + ["roi-neg"]
    zero = svg.one("line", **{"class": "zero"})
    assert float(bars[3].attrs["x"]) + float(bars[3].attrs["width"]) == pytest.approx(
        float(zero.attrs["x1"])
    )  # negative ROI is drawn left of the zero line
    assert "650.0%" in svg.text() and "-80.0%" in svg.text()
    note = dom.one("p", data_no_spend="1")
    assert "newsletter" in note.text()


def test_tables_show_formatted_values(dom: Node) -> None:
    channels = dom.one("table", data_table="channels")
    assert cells(channels, "Paid Search") == [
        "Paid Search", "$20,000", "3,000", "40", "20.0", "8.0", "$90,000", "$50,000",
        "350.0%", "4.50x", "$2,500.00", "$500.00", "50.0%", "40.0%",
    ]  # fmt: skip
    assert cells(channels, "Paid Social")[8:10] == ["-40.0%", "0.60x"]
    assert cells(channels, "Organic Search")[8:12] == ["–"] * 4
    assert cells(channels, "Email")[12:] == ["0.0%", "–"]
    assert cells(channels, "Total")[1:2] + cells(channels, "Total")[6:10] == [
        "$35,000", "$249,000", "$75,000", "611.4%", "7.11x",
    ]  # fmt: skip
    negative = [td for td in channels.all("td") if "neg" in td.attrs["class"].split()]
    assert [td.text() for td in negative] == ["-40.0%"]
    campaigns = dom.one("table", data_table="campaigns")
    assert cells(campaigns, "retargeting")[:3] == ["retargetingmeta", "Paid Social", "$10,000"]
    assert cells(campaigns, "newsletter")[9] == "–"
    assert cells(campaigns, "brand-search")[9:] == [
        "650.0%", "7.50x", "$2,000.00", "$400.00", "50.0%", "40.0%",
    ]  # fmt: skip
    pipeline = dom.one("table", data_table="pipeline")
    assert cells(pipeline, "Paid Search")[1:] == ["$30,000", "$20,000", "$50,000"]
    models = dom.one("table", data_table="models")
    assert cells(models, "Paid Search") == ["Paid Search", "$81,000", "$99,000", "$90,000"]
    kpis = [d.text() for d in dom.all("div", **{"class": "value"})]
    assert kpis[:4] == ["$249,000", "$35,000", "611.4%", "7.11x"]
    assert "$1,235" in dom.one("p", data_unmatched_spend="1234.56").text()
    assert "2026-10-01 – 2026-10-31" in dom.one("header").text()


def test_a_campaign_named_script_is_text(dom: Node) -> None:
    campaigns = dom.one("table", data_table="campaigns")
    assert cells(campaigns, EVIL)[:2] == [EVIL + "meta", "Paid Social"]
    assert dom.all("img") == []
    assert dom.one("head").one("title").text() == "Closed-loop revenue report"
    data = dom.one("script", type="application/json", id="report-data")
    assert json.loads(data.text())["campaigns"][2]["campaign"] == EVIL


def test_empty_report_with_no_values(tmp_path: Path) -> None:
    dom = dump_dom(empty_dict(), tmp_path)
    assert len(chart(dom, "funnel").all("rect")) == 6
    assert chart(dom, "revenue-spend").all("rect", data_series="revenue") == []
    roi = chart(dom, "roi-campaign")
    assert roi.all("rect") == [] and "No campaign has spend" in roi.text()
    assert dom.all("table") == []
    assert not any("data-unmatched-spend" in n.attrs for n in dom.iter())
    assert [d.text() for d in dom.all("div", **{"class": "value"})][:3] == ["€0", "€0", "–"]


def test_screenshot_is_a_real_page(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report_dict()), encoding="utf-8")
    shot = tmp_path / "report.png"
    run_chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1600")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert (width, height, depth) == (1280, 1600, 8)
    idat, at = b"", 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        if png[at + 4 : at + 8] == b"IDAT":
            idat += png[at + 8 : at + 8 + length]
        at += 12 + length
    channels = {2: 3, 6: 4}[colour]
    assert len(zlib.decompress(idat)) == height * (1 + width * channels)
    # A blank page of this size compresses to ~14 kB; text and charts make it much larger.
    assert len(png) > 60_000
