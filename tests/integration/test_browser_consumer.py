"""The consumer page and explorer in headless Chromium against a real running anchor.

One anchor process (``coldtrail-anchor serve``, real SQLite ledger) receives a
signed journey through ``POST /v1/batches``; one browser per module then looks at
the page like a person would, and the in-browser verifier must go green, or red
as soon as a served value or the bundle is tampered with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from support.browser import launch_chromium
from support.provenance_fixtures import GTIN, LOT, running_anchor, standard_journey

pytestmark = pytest.mark.integration

LOT_PATH = f"/01/{GTIN}/10/{LOT}"
MARK_TIMEOUT_MS = 20_000


@dataclass
class Anchor:
    base: str


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anchor]:
    with running_anchor(tmp_path_factory.mktemp("anchor"), standard_journey()) as base:
        yield Anchor(base)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 412, "height": 915})  # a phone
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def _mark(page: Page) -> Any:
    return page.locator("#verify")


def test_consumer_page_shows_the_journey_and_verifies_in_the_browser(
    anchor: Anchor, page: Page, tmp_path: Path
) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(anchor.base + LOT_PATH)
    expect(page.locator("h1")).to_contain_text(GTIN)
    expect(page.locator('[data-claim="lot"]')).to_have_text(LOT)
    steps = page.locator("#timeline .step-name").all_inner_texts()
    assert steps == ["Packed", "Loaded", "Unloaded", "Received", "Shipped"]
    holders = page.locator("#timeline .holder").all_inner_texts()
    assert holders == ["line-4", "truck-07", "coldroom-3", "coldroom-3", "coldroom-3"]
    expect(page.locator("svg#chart polyline")).to_have_count(3)
    expect(page.locator("svg#chart rect.band")).to_have_count(1)
    expect(page.locator('[data-claim="verdict"]')).to_have_text("Kept within its profile")
    expect(_mark(page)).to_have_attribute("data-state", "verified", timeout=MARK_TIMEOUT_MS)
    expect(page.locator("#verify-title")).to_have_text("Verified")
    expect(page.locator("#verify-detail")).to_contain_text("WebCrypto")
    # The verdict itself was recomputed in the browser by coldchain.js, not taken on trust.
    expect(page.locator("#verify-detail")).to_contain_text("The verdict was recomputed here")
    assert page.locator(".checked").count() == page.locator("[data-claim]").count() >= 8
    color = page.eval_on_selector("#verify", "e => getComputedStyle(e).borderTopColor")
    assert color == "rgb(27, 122, 58)"  # green
    page.screenshot(path=str(tmp_path / "consumer-verified.png"), full_page=True)
    page.locator("svg#chart").screenshot(path=str(tmp_path / "chart.png"))
    assert all(u.startswith(anchor.base) for u in requests), requests  # nothing from elsewhere


def test_a_tampered_value_on_the_page_turns_the_mark_red(
    anchor: Anchor, page: Page, tmp_path: Path
) -> None:
    def lie_about_the_maximum(route: Route) -> None:
        response = route.fetch()
        html = response.text()
        marker = 'data-claim="max" data-q="temperature">'
        start = html.index(marker) + len(marker)
        end = html.index("<", start)
        assert float(html[start:end]) > 4.5
        route.fulfill(response=response, body=html[:start] + "4.1" + html[end:])

    page.route(anchor.base + LOT_PATH, lie_about_the_maximum)
    page.goto(anchor.base + LOT_PATH)
    expect(page.locator('[data-claim="max"]')).to_have_text("4.1")
    expect(_mark(page)).to_have_attribute("data-state", "failed", timeout=MARK_TIMEOUT_MS)
    expect(page.locator("#verify-title")).to_have_text("NOT verified")
    expect(page.locator("#verify-detail")).to_contain_text("max")
    expect(page.locator('[data-claim="max"]')).to_have_class("mismatch")
    color = page.eval_on_selector("#verify", "e => getComputedStyle(e).borderTopColor")
    assert color == "rgb(176, 0, 32)"  # red
    page.screenshot(path=str(tmp_path / "consumer-tampered.png"), full_page=True)


def test_a_tampered_timeline_step_turns_the_mark_red(anchor: Anchor, page: Page) -> None:
    def move_the_truck(route: Route) -> None:
        response = route.fetch()
        html = response.text().replace('class="holder">truck-07<', 'class="holder">truck-99<')
        route.fulfill(response=response, body=html)

    page.route(anchor.base + LOT_PATH, move_the_truck)
    page.goto(anchor.base + LOT_PATH)
    expect(_mark(page)).to_have_attribute("data-state", "failed", timeout=MARK_TIMEOUT_MS)
    expect(page.locator("#verify-detail")).to_contain_text("custody")


@pytest.mark.parametrize(
    ("claim", "fake"),
    [("mkt", "2.00 °C"), ("time-out", "45 min"), ("verdict", "Out of its profile")],
)
def test_a_page_that_misstates_the_verdict_or_its_figures_turns_the_mark_red(
    anchor: Anchor, page: Page, claim: str, fake: str
) -> None:
    def misstate(route: Route) -> None:
        response = route.fetch()
        html = response.text()
        marker = f'data-claim="{claim}"'
        start = html.index(">", html.index(marker)) + 1
        end = html.index("<", start)
        assert html[start:end] != fake
        route.fulfill(response=response, body=html[:start] + fake + html[end:])

    page.route(anchor.base + LOT_PATH, misstate)
    page.goto(anchor.base + LOT_PATH)
    expect(_mark(page)).to_have_attribute("data-state", "failed", timeout=MARK_TIMEOUT_MS)
    expect(page.locator("#verify-detail")).to_contain_text(claim)
    expect(page.locator(f'[data-claim="{claim}"]')).to_have_class("mismatch")


def test_a_tampered_bundle_turns_the_mark_red(anchor: Anchor, page: Page) -> None:
    def warm_a_reading(route: Route) -> None:
        response = route.fetch()
        bundle = response.json()
        entry = next(
            e for b in bundle["batches"] for e in b["records"] if e["record"]["type"] == "reading"
        )
        entry["record"]["val"] = entry["record"]["val"] - 1
        route.fulfill(response=response, body=json.dumps(bundle))

    page.route("**/v1/provenance/bundle?*", warm_a_reading)
    page.goto(anchor.base + LOT_PATH)
    expect(_mark(page)).to_have_attribute("data-state", "failed", timeout=MARK_TIMEOUT_MS)
    expect(page.locator("#verify-detail")).to_contain_text("does not verify")


def test_a_bundle_that_repeats_a_batch_turns_the_mark_red(anchor: Anchor, page: Page) -> None:
    def repeat_a_batch(route: Route) -> None:
        response = route.fetch()
        bundle = response.json()
        assert bundle["attestation_format"] == "coldtrail-attestation/v3"
        bundle["batches"].append(bundle["batches"][0])
        route.fulfill(response=response, body=json.dumps(bundle))

    page.route("**/v1/provenance/bundle?*", repeat_a_batch)
    page.goto(anchor.base + LOT_PATH)
    expect(_mark(page)).to_have_attribute("data-state", "failed", timeout=MARK_TIMEOUT_MS)
    expect(page.locator("#verify-detail")).to_contain_text("appears twice")


def test_explorer_shows_blocks_entries_gateways_and_orgs(
    anchor: Anchor, page: Page, tmp_path: Path
) -> None:
    page.goto(anchor.base + "/explorer")
    expect(page.locator("h1")).to_have_text("Latest blocks")
    assert page.locator("tbody tr").count() >= 1
    # The block that holds the first batch: the newest blocks may have no entries.
    page.goto(anchor.base + "/explorer/blocks/1")
    expect(page.locator("h1")).to_have_text("Block 1")
    expect(page.locator("pre.note")).to_contain_text("coldtrail.example/log")
    page.locator("tbody a").first.click()
    expect(page.locator("h1")).to_contain_text("Gateway")
    page.screenshot(path=str(tmp_path / "explorer-gateway.png"), full_page=True)
    page.locator('a[href^="/explorer/orgs/"]').click()
    expect(page.locator("h2")).to_have_text(["Gateways", "Scorecard"])
    assert page.locator("tbody tr").count() >= 1
