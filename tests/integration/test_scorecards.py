"""Custodian scorecards on a real anchor: the standard journey with a 25-minute excursion
on cool-logistics' truck-07, anchored through ``POST /v1/batches``; the export's figures
checked by hand, its rows against the log's leaves, recomputed by ``coldtrail-verify
scorecard`` in a subprocess (and a massaged copy refused), and the explorer's org page
rendered with its chart.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proofs.records import Reading
from support.provenance_fixtures import MIN, T0, Journey, running_anchor, standard_journey

pytestmark = pytest.mark.integration

PERIOD = f"from={T0 - 24 * 60 * MIN}&to={T0 + 48 * 60 * MIN}"


def _get(base: str, path: str, accept: str = "application/json") -> tuple[int, bytes, Any]:
    req = urllib.request.Request(base + path, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Journey, Path]]:
    tmp = tmp_path_factory.mktemp("scorecards")
    journey = standard_journey(excursion=True)
    with running_anchor(tmp, journey) as base:
        yield base, journey, tmp


def _export(base: str, org: str) -> tuple[bytes, dict[str, Any]]:
    """The export once every leg rests inside a signed checkpoint (a checkpoint follows
    ingest within a second)."""
    deadline = time.monotonic() + 30
    while True:
        status, body, _ = _get(base, f"/v1/scorecards/{org}?{PERIOD}")
        assert status == 200, body
        doc: dict[str, Any] = json.loads(body)
        if (doc["rows"] and doc["pending"] == 0) or time.monotonic() > deadline:
            return body, doc
        time.sleep(0.3)


def test_a_carrier_with_one_excursion_shows_it(anchor) -> None:
    base, _, _ = anchor
    _, doc = _export(base, "cool-logistics")
    assert doc["format"] == "coldtrail-scorecard/1" and doc["pending"] == 0
    assert doc["org"] == {"id": "cool-logistics", "name": "Cool Logistics"}
    [row] = doc["rows"]
    assert (row["holder"], row["lot"], row["status"], row["excursions"]) == (
        "truck-07", "LOT-2026-11A", "fail", 1)  # fmt: skip
    # Loaded at T0+60 min, handed over at T0+300 min; readings every 5 min throughout.
    assert (row["start_ms"], row["end_ms"]) == (T0 + 60 * MIN, T0 + 300 * MIN)
    assert row["covered_ms"] == 240 * MIN
    # 9.5, 10.0, 9.5, 10.0, 9.5 °C from T0+150 to T0+175 min, each held 5 min above 8 °C:
    # 5 × (1.5 + 2.0 + 1.5 + 2.0 + 1.5) = 42.5 °C·min.
    assert row["degree_minutes"] == 42.5
    f = doc["figures"]["orgs"]["cool-logistics"]
    assert (f["shipments"], f["with_excursion"], f["excursion_rate"]) == (1, 1, 1.0)
    assert (f["degree_minutes_per_shipment"], f["completeness"]) == (42.5, 1.0)
    assert (f["claims"], f["claims_resolved"], f["median_resolution_ms"]) == (0, 0, None)
    assert doc["figures"]["holders"]["truck-07"]["shipments"] == 1
    assert list(doc["figures"]["months"]["cool-logistics"]) == ["2026-11"]
    # The packer's own places passed: a line and a cold room, no excursion.
    _, packer = _export(base, "fresh-farms")
    p = packer["figures"]["orgs"]["fresh-farms"]
    assert (p["shipments"], p["with_excursion"], p["excursion_rate"]) == (2, 0, 0.0)
    assert sorted(packer["figures"]["holders"]) == ["coldroom-3", "line-4"]


def test_rows_rest_on_the_logs_leaves(anchor) -> None:
    base, journey, _ = anchor
    _, doc = _export(base, "cool-logistics")
    [row] = doc["rows"]
    size = doc["checkpoint"]["tree_size"]
    leaves = {}
    for index in row["leaves"]:
        assert index < size
        status, body, _ = _get(base, f"/v1/log/leaves/{index}")
        assert status == 200
        leaves[index] = json.loads(body)
    # The truck's two batches (its loading scan and readings) and the cold room's batch
    # with the unloading scan that handed the lot over.
    gws = sorted(leaf["gw"] for leaf in leaves.values())
    assert gws == ["coldroom-3-gw", "truck-07-gw", "truck-07-gw"]
    truck = journey.gateways["truck-07-gw"].records
    assert len(row["receipts"]) == 2
    for index, latency in row["receipts"]:
        m = leaves[index]["manifest"]
        earliest = min(
            r.t
            for r in truck
            if isinstance(r, Reading) and m["first_seq"] <= r.seq <= m["last_seq"]
        )
        assert latency == leaves[index]["accepted_at"] - earliest
    latencies = sorted(latency for _, latency in row["receipts"])
    expected = (latencies[0] + latencies[1]) // 2  # an even count: the lower mean
    assert doc["figures"]["orgs"]["cool-logistics"]["median_receipt_ms"] == expected


def _verify(tmp: Path, body: bytes, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp / "export.json"
    path.write_bytes(body)
    return subprocess.run(
        [sys.executable, "-m", "proofs.verify_cli", "scorecard", str(path), *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_coldtrail_verify_recomputes_the_export(anchor) -> None:
    base, _, tmp = anchor
    body, doc = _export(base, "cool-logistics")
    _, log_body, _ = _get(base, "/v1/log")
    vkey = json.loads(log_body)["log_vkey"]
    done = _verify(tmp, body, "--log-key", vkey)
    assert done.returncode == 0, done.stderr
    assert "VALID: 1 shipment(s)" in done.stdout and "excursion rate 100.0 %" in done.stdout
    doc["figures"]["orgs"]["cool-logistics"]["excursion_rate"] = 0.0
    doc["figures"]["orgs"]["cool-logistics"]["with_excursion"] = 0
    done = _verify(tmp, json.dumps(doc).encode(), "--log-key", vkey)
    assert done.returncode == 1
    assert "figures.orgs.cool-logistics" in done.stderr
    assert "[scorecard-figure-mismatch]" in done.stderr


def test_the_org_page_shows_the_scorecard_and_its_chart(anchor) -> None:
    base, _, _ = anchor
    _export(base, "cool-logistics")
    status, body, headers = _get(base, f"/explorer/orgs/cool-logistics?{PERIOD}", "text/html")
    assert status == 200
    page = body.decode()
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert '<section id="scorecard"' in page
    assert '<svg id="scorecard-chart"' in page and '<title id="scorecard-chart-title">' in page
    assert '<desc id="scorecard-chart-desc">' in page and "2026-11: 1 shipment(s)" in page
    assert '<rect class="bar"' in page and '<circle class="rate-point"' in page
    assert '<dd data-figure="excursion_rate">100.0 % (1 of 1)</dd>' in page
    assert '<dd data-figure="degree_minutes_per_shipment">42.5 °C·min</dd>' in page
    assert "<td>truck-07</td>" in page  # the per-place table
    assert 'href="/v1/scorecards/cool-logistics"' in page


def test_the_chart_renders_in_a_browser_under_the_pages_csp(anchor, tmp_path: Path) -> None:
    """Headless Chromium: the inline SVG is drawn (it needs no script or inline style,
    which the CSP would block and report), its bars and rate point are laid out, and the
    table gives the same month."""
    from support.browser import launch_chromium

    base, _, _ = anchor
    _export(base, "cool-logistics")
    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 1024, "height": 900})
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        missing: list[str] = []  # what the page asked for and did not get (not the favicon)
        page.on("response", lambda r: missing.append(r.url) if r.status >= 400
                and not r.url.endswith("/favicon.ico") else None)  # fmt: skip
        page.goto(f"{base}/explorer/orgs/cool-logistics?{PERIOD}")
        chart = page.locator("svg#scorecard-chart")
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        bar = page.locator("svg#scorecard-chart rect.bar").bounding_box()
        assert bar is not None and bar["height"] > 50  # the only month is the tallest bar
        assert page.get_by_role("img", name="Shipments and excursion rate per month").count() == 1
        assert page.locator("#scorecard table tbody tr").first.inner_text().startswith("2026-11")
        chart.screenshot(path=str(tmp_path / "scorecard-chart.png"))
        page.screenshot(path=str(tmp_path / "org-scorecard.png"), full_page=True)
        context.close()
    assert missing == []
    assert [p for p in problems if "Content Security Policy" in p or "Refused" in p] == []


def test_refusals(anchor) -> None:
    base, _, _ = anchor
    status, body, _ = _get(base, "/v1/scorecards/nobody")
    assert status == 404 and json.loads(body)["code"] == "not-found"
    status, body, _ = _get(base, "/v1/scorecards/cool-logistics?colour=red")
    assert status == 400 and json.loads(body)["code"] == "bad-parameter"
    status, body, _ = _get(base, f"/v1/scorecards/cool-logistics?from={T0}&to={T0}")
    assert status == 400 and json.loads(body)["code"] == "bad-parameter"
