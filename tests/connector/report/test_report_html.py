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

from connector.report.cells import Money, multiple, percent
from connector.report.closed_loop import ClosedLoopReport, Row, Totals
from connector.report.html import render_html, script_json

EVIL = '</script><img src=x onerror="document.title=\'pwned\'"> & "q"'
MODELS = ["first_touch", "last_touch", "linear"]


def row(name: str, spend: float, revenue: float, **kw: Any) -> Row:
    """A channel or campaign; the other models get slightly different revenue."""
    revenues = {"first_touch": revenue * 0.9, "last_touch": revenue * 1.1, "linear": revenue}
    return Row(name, spend=spend, revenue=revenues, **kw)


def report() -> ClosedLoopReport:
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
        row("No campaign", 0, 146_000),
    ]  # fmt: skip
    stages = {
        "Qualified To Buy": {"Paid Search": 30_000.0, "Organic Search": 20_000.0},
        "Contract Sent": {"Paid Search": 20_000.0, "Paid Social": 5_000.0},
    }
    # The CRM: 300,000 won in the period (30 deals, 4 without a touch), 100,000 open.
    totals = Totals(
        won=300_000.0, won_deals=30, credited_won_deals=dict.fromkeys(MODELS, 26),
        pipeline=100_000.0, open_deals=9,
        pipeline_credit={"first_touch": 70_000.0, "last_touch": 75_000.0, "linear": 75_000.0},
    )  # fmt: skip
    return ClosedLoopReport(
        MODELS, "linear", "USD", None, None, channels, campaigns, stages, unmatched_spend=1234.56,
        totals=totals, stage_totals={"Qualified To Buy": 60_000.0, "Contract Sent": 40_000.0},
        period=(date(2026, 10, 3), date(2026, 10, 29)),
        journey={"window_days": 90, "account_based": False},
    )  # fmt: skip


def report_dict(by: str = "channel") -> dict[str, Any]:
    return report().to_dict(by)


def empty_dict() -> dict[str, Any]:
    return ClosedLoopReport(["linear"], "linear", "EUR", None, None, [], [], {}, 0.0).to_dict()


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


@pytest.fixture(scope="module")
def campaign_dom(tmp_path_factory: pytest.TempPathFactory) -> Node:
    return dump_dom(report_dict("campaign"), tmp_path_factory.mktemp("html-campaigns"))


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
    page = render_html(report_dict("campaign"))
    assert not re.search(r"https?://", page)
    assert not re.search(r"<[^>]*\ssrc\s*=|@import|url\(", page)
    # the only links are to places in the page itself
    assert re.findall(r"href=\"([^\"]*)\"", page) == ["#journey"]
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


def test_headline_reconciles_and_separates_paid_roi(dom: Node) -> None:
    kpis = {
        d.one("div", **{"class": "label"}).text(): d.all("div")[-1].text()
        for d in dom.all("div", **{"class": "kpi"})
    }
    assert kpis["CRM closed-won total"] == "$300,000.00"
    assert kpis["Attributed to touches (83%)"] == "$249,000.00"
    assert kpis["Unattributed (no touch)"] == "$51,000.00"
    # paid: the channels with spend (Paid Search, Paid Social); the rest had none behind it
    assert kpis["Paid revenue"] == "$99,000.00" and kpis["Spend"] == "$35,000.00"
    assert kpis["Paid ROI"] == "182.9%" and kpis["Paid ROAS"] == "2.83x"
    assert kpis["With no spend behind it"] == "$150,000.00"
    assert kpis["Won deals (CRM)"] == "30" and kpis["Open pipeline (CRM)"] == "$100,000.00"
    assert kpis["Pipeline unattributed"] == "$25,000.00"
    assert "2026-10-03 – 2026-10-29" in dom.one("header").text()  # the data's own days


def test_funnel_chart(dom: Node) -> None:
    svg = chart(dom, "funnel")
    rects = svg.all("rect")
    assert [r.attrs["data-label"] for r in rects] == [
        "touches", "leads", "opportunities", "won_deals", "revenue", "spend",
    ]  # fmt: skip
    # the money panel: revenue of the channels with spend, against that spend
    assert [float(r.attrs["data-value"]) for r in rects] == [12500, 160, 62, 23.5, 99000, 35000]
    widths = [float(r.attrs["width"]) for r in rects[:4]]
    assert widths == sorted(widths, reverse=True) and widths[-1] > 0
    assert svg.attrs["role"] == "img" and svg.one("title", id="funnel-title").text() == "Funnel"
    assert svg.attrs["aria-labelledby"] == "funnel-title funnel-desc"
    text = svg.text()
    assert "1.3%" in text and "38.8%" in text and "37.9%" in text  # stage conversion rates
    assert "Paid ROI" in text and "182.9%" in text


def test_revenue_and_spend_chart_follows_the_view(dom: Node, campaign_dom: Node) -> None:
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
    by_campaign = chart(campaign_dom, "revenue-spend").all("rect", data_series="revenue")
    assert by_campaign[0].attrs["data-label"] == "brand-search"
    assert "Revenue and spend by campaign" in campaign_dom.text()


def test_roi_chart_by_campaign(campaign_dom: Node) -> None:
    svg = chart(campaign_dom, "roi")
    bars = svg.all("rect")
    assert [b.attrs["data-label"] for b in bars] == ["brand-search", "generic", EVIL, "retargeting"]
    assert [b.attrs["data-sign"] for b in bars] == ["positive"] * 3 + ["negative"]
    assert [b.attrs["class"] for b in bars] == ["roi-pos"] * 3 + ["roi-neg"]
    zero = svg.one("line", **{"class": "zero"})
    assert float(bars[3].attrs["x"]) + float(bars[3].attrs["width"]) == pytest.approx(
        float(zero.attrs["x1"])
    )  # negative ROI is drawn left of the zero line
    assert "650.0%" in svg.text() and "-80.0%" in svg.text()
    note = campaign_dom.one("p", data_no_spend="2")
    assert "newsletter" in note.text() and "No campaign" in note.text()


def test_roi_chart_by_channel(dom: Node) -> None:
    bars = chart(dom, "roi").all("rect")
    assert [b.attrs["data-label"] for b in bars] == ["Paid Search", "Paid Social"]


def test_channel_table_reconciles_to_the_crm(dom: Node) -> None:
    channels = dom.one("table", data_table="channels")
    head = [th.text() for th in channels.all("th")]
    assert head[4:8] == ["Opps (credit)", "Won (credit)", "Revenue (Linear credit)",
                         "Pipeline (credit)"]  # fmt: skip
    assert cells(channels, "Paid Search") == [
        "Paid Search", "$20,000.00", "3,000", "40", "20.0", "8.0", "$90,000.00", "$50,000.00",
        "350.0%", "4.50x", "$2,500.00", "$500.00", "50.0%", "40.0%",
    ]  # fmt: skip
    assert cells(channels, "Paid Social")[8:10] == ["-40.0%", "0.60x"]
    assert cells(channels, "Organic Search")[8:12] == ["–"] * 4
    assert cells(channels, "Email")[12:] == ["0.0%", "–"]
    assert cells(channels, "Attributed total")[6:8] == ["$249,000.00", "$75,000.00"]
    assert cells(channels, "Unattributed (no touch)")[5:8] == ["4.0", "$51,000.00", "$25,000.00"]
    assert cells(channels, "CRM total")[5:8] == ["30.0", "$300,000.00", "$100,000.00"]
    negative = [td for td in channels.all("td") if "neg" in td.attrs["class"].split()]
    assert [td.text() for td in negative] == ["-40.0%"]
    assert dom.all("table", data_table="campaigns") == []  # --by channel shows channels
    assert "$1,235" in dom.one("p", data_unmatched_spend="1234.56").text()


def test_models_table_reconciles_under_every_model(dom: Node) -> None:
    models = dom.one("table", data_table="models")
    assert cells(models, "Paid Search") == [
        "Paid Search", "$81,000.00", "$99,000.00", "$90,000.00",
    ]  # fmt: skip
    assert cells(models, "Unattributed (no touch)")[1:] == [
        "$75,900.00", "$26,100.00", "$51,000.00",
    ]  # fmt: skip
    assert cells(models, "CRM total")[1:] == ["$300,000.00"] * 3


def test_pipeline_by_stage_shows_labels_and_the_unattributed_part(dom: Node) -> None:
    pipeline = dom.one("table", data_table="pipeline")
    assert [th.text() for th in pipeline.all("th")] == [
        "Channel", "Qualified To Buy", "Contract Sent", "Total",
    ]  # fmt: skip
    assert cells(pipeline, "Paid Search")[1:] == ["$30,000.00", "$20,000.00", "$50,000.00"]
    assert cells(pipeline, "Unattributed (no touch)")[1:] == [
        "$10,000.00", "$15,000.00", "$25,000.00",
    ]  # fmt: skip
    assert cells(pipeline, "CRM total")[1:] == ["$60,000.00", "$40,000.00", "$100,000.00"]


def test_campaign_view(campaign_dom: Node) -> None:
    campaigns = campaign_dom.one("table", data_table="campaigns")
    assert cells(campaigns, "retargeting")[:3] == ["retargetingmeta", "Paid Social", "$10,000.00"]
    assert cells(campaigns, "newsletter")[9] == "–"
    assert cells(campaigns, "brand-search")[9:] == [
        "650.0%", "7.50x", "$2,000.00", "$400.00", "50.0%", "40.0%",
    ]  # fmt: skip
    assert cells(campaigns, "No campaign")[7] == "$146,000.00"
    assert cells(campaigns, "CRM total")[7] == "$300,000.00"
    assert campaign_dom.all("table", data_table="channels") == []


def test_journey_definition_is_linked(dom: Node) -> None:
    link = next(a for a in dom.all("a") if a.attrs.get("href") == "#journey")
    assert link.text() == "what a journey is"
    journey = dom.one("section", id="journey")
    text = journey.text()
    assert "90 days" in text and "close date in the CRM's time zone" in text
    assert "README.md" in text


def test_a_campaign_named_script_is_text(campaign_dom: Node) -> None:
    campaigns = campaign_dom.one("table", data_table="campaigns")
    assert cells(campaigns, EVIL)[:2] == [EVIL + "meta", "Paid Social"]
    assert campaign_dom.all("img") == []
    assert campaign_dom.one("head").one("title").text() == "Closed-loop revenue report"
    data = campaign_dom.one("script", type="application/json", id="report-data")
    assert json.loads(data.text())["campaigns"][2]["campaign"] == EVIL


def test_empty_report_with_no_values(tmp_path: Path) -> None:
    dom = dump_dom(empty_dict(), tmp_path)
    assert len(chart(dom, "funnel").all("rect")) == 6
    assert chart(dom, "revenue-spend").all("rect", data_series="revenue") == []
    roi = chart(dom, "roi")
    assert roi.all("rect") == [] and "No channel has spend" in roi.text()
    assert dom.all("table") == []
    assert not any("data-unmatched-spend" in n.attrs for n in dom.iter())
    assert [d.text() for d in dom.all("div", **{"class": "value"})][:3] == ["€0.00"] * 3
    assert "no dated data" in dom.one("header").text()


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
