"""The consumer page on a plain-HTTP LAN name: no WebCrypto, the bundled verifier takes over.

Chromium resolves ``lan.test`` to the anchor's loopback port, so the page's origin
is an ordinary http:// origin, which is not a secure context, exactly as for a phone
that opens ``http://anchor.local/01/...`` on a shop's Wi-Fi.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from support.browser import launch_chromium
from support.provenance_fixtures import GTIN, LOT, running_anchor, standard_journey

pytestmark = pytest.mark.integration

LOT_PATH = f"/01/{GTIN}/10/{LOT}"


@pytest.fixture(scope="module")
def lan_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # The truck ran warm for 25 minutes: the page must say so and still verify.
    journey = standard_journey(excursion=True)
    with running_anchor(tmp_path_factory.mktemp("anchor"), journey) as base:
        yield f"http://lan.test:{urlsplit(base).port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium(["--host-resolver-rules=MAP lan.test 127.0.0.1"]) as b:
        yield b


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 412, "height": 915})
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def test_plain_http_page_verifies_an_excursion_with_the_bundled_verifier(
    lan_base: str, page: Page, tmp_path: Path
) -> None:
    page.goto(lan_base + LOT_PATH)
    assert page.evaluate("() => window.isSecureContext") is False
    assert page.evaluate("() => Boolean(window.crypto && window.crypto.subtle)") is False
    expect(page.locator("#verify")).to_have_attribute("data-state", "verified", timeout=30_000)
    expect(page.locator("#verify-detail")).to_contain_text("@noble/ed25519 3.2.0")
    expect(page.locator("#verify-detail")).to_contain_text("The verdict was recomputed here")
    assert page.locator(".checked").count() == page.locator("[data-claim]").count()
    expect(page.locator('[data-claim="verdict"]')).to_have_text("Out of its profile")
    expect(page.locator('[data-claim="max"]')).to_have_text("10")
    expect(page.locator("svg#chart rect.excursion")).to_have_count(1)
    # Five hot readings 5 min apart (T0+150..T0+170 min), each standing for 5 min.
    expect(page.locator("#timeline .interval-stats .bad")).to_have_text(
        "1 excursion(s), 25 min out of range"
    )
    expect(page.locator('[data-claim="time-out"]')).to_have_text("25 min")
    page.screenshot(path=str(tmp_path / "lan-verified.png"), full_page=True)


def test_plain_http_page_still_turns_red_on_a_forged_signature(lan_base: str, page: Page) -> None:
    def forge(route: Route) -> None:
        # Playwright fetches from its own process, which does not know lan.test.
        response = route.fetch(url=route.request.url.replace("//lan.test:", "//127.0.0.1:"))
        bundle = response.json()
        manifest = bundle["batches"][0]["manifest"]
        sig = bytearray(base64.b64decode(manifest["sig"]))
        sig[5] ^= 0x01  # one flipped bit in the gateway's signature
        manifest["sig"] = base64.b64encode(bytes(sig)).decode()
        route.fulfill(response=response, body=json.dumps(bundle))

    page.route("**/v1/provenance/bundle?*", forge)
    page.goto(lan_base + LOT_PATH)
    expect(page.locator("#verify")).to_have_attribute("data-state", "failed", timeout=30_000)
    expect(page.locator("#verify-detail")).to_contain_text("manifest signature")
