"""The explorer's consortium page on a real consortium (tests/support/consortium.py): three
member nodes, each its own ``coldtrail-anchor serve`` and ``nats-server``, started once for
this module. The page and the block page are read as HTML, then in headless Chromium,
with the warehouse member killed."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from support.browser import launch_chromium
from support.consortium import Consortium, Member

pytestmark = pytest.mark.integration

PAGE = "/explorer/consortium"
BOUND_S = 60  # each test, once the consortium is up


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    with Consortium(tmp_path_factory.mktemp("consortium")) as c:
        yield c


def _health_row(page: str, member: str) -> str:
    match = re.search(rf'<tr data-member="{member}"[^>]*>.*?</tr>', page)
    assert match, page
    return match.group(0)


def _behind(page: str, member: str) -> int | None:
    found = re.search(r'data-behind="(\d*)"', _health_row(page, member))
    assert found
    return int(found.group(1)) if found.group(1) else None


def _post(m: Member, batches: int) -> None:
    for _ in range(batches):
        _, body = m.gateway.readings_batch(3)
        status, answer = m.post(body)
        assert status == 201, (m.name, answer)


def _all_up_to_date(c: Consortium, at: Member) -> str:
    """A batch at every member, then until the warehouse has cosigned the newest checkpoint
    too (two cosignatures make it final; the third may land a moment later): the page."""
    for m in c.members:
        _post(m, 1)
    c.wait_same_tree()
    deadline = time.monotonic() + 15
    while True:
        status, page = at.text(PAGE)
        assert status == 200, page
        if _behind(page, "warehouse") == 0 or time.monotonic() > deadline:
            return page
        time.sleep(0.3)


def _warehouse_down(c: Consortium) -> None:
    """The warehouse killed (-9) once it has cosigned something, then batches at the
    packer: final with the packer's and the carrier's cosignatures, the warehouse's last
    cosignature left behind."""
    packer, _carrier, warehouse = c.members
    if warehouse.proc is not None:
        _all_up_to_date(c, packer)
        c.kill(warehouse)
    _post(packer, 3)


def test_the_consortium_page_shows_members_cosigners_and_a_member_falling_behind(
    consortium: Consortium,
) -> None:
    started = time.monotonic()
    c = consortium
    packer, carrier, warehouse = c.members
    if warehouse.proc is None:
        c.start(warehouse)  # the browser test ran first and killed it
    page = _all_up_to_date(c, carrier)
    assert "up to date" in _health_row(page, "warehouse")
    for m in c.members:
        assert f'<tr data-member="{m.name}"' in page
        assert (
            f'<code class="key" title="{m.cosigner_vkey}">' in page
        )  # key shortened, whole in title
        assert f'<a href="{m.url}">' in page
    assert "final when 2 of 3 members have cosigned" in page
    group = next(line for line in c.policy_text.splitlines() if line.startswith("group "))
    assert "<details><summary>" in page and group in page
    # A final checkpoint with two or more cosigners, each a mark in its member's column.
    finals = [
        (int(h), int(n))
        for h, n, row in re.findall(
            r'<tr data-height="(\d+)" data-cosigners="(\d+)">(.*?)</tr>', page
        )
        if ">final<" in row and row.count('class="cosigned"') == int(n)
    ]
    assert finals and max(n for _, n in finals) >= 2, page
    height = max(h for h, n in finals if n >= 2)
    assert "(this node)" in _health_row(page, "carrier")
    assert 'id="this-node" class="node"' in page and "This node: carrier" in page
    # Its block page names the cosigners and says it is final.
    status, block = carrier.text(f"/explorer/blocks/{height}")
    assert status == 200 and '<span class="state state-ok">Final</span>' in block
    assert block.count('<li class="cosigned">') >= 2
    status, home = carrier.text("/explorer")
    assert status == 200 and f'href="{PAGE}"' in home

    _warehouse_down(c)
    status, page = packer.text(PAGE)
    assert status == 200, page
    behind = _behind(page, "warehouse")
    assert behind is not None and behind > 0, _health_row(page, "warehouse")
    assert ">behind<" in _health_row(page, "warehouse")
    assert _behind(page, "packer") == 0 and "up to date" in _health_row(page, "packer")
    # The same figures as the API the page is drawn from.
    status, doc = packer.get("/v1/consortium")
    assert status == 200
    row = next(m for m in doc["members"] if m["name"] == "warehouse")
    assert row["behind"] == behind and row["first_missed"] is not None
    assert time.monotonic() - started < BOUND_S


def test_the_health_table_in_a_browser(consortium: Consortium, tmp_path: Path) -> None:
    started = time.monotonic()
    _warehouse_down(consortium)
    # Launched here, not as a fixture: Playwright's sync API holds an event loop on this
    # thread, and the consortium's NATS set-up (a module fixture) runs one of its own.
    with launch_chromium() as browser:
        _look_at_the_page(browser, consortium.members[0].url, tmp_path / "consortium.png")
    assert time.monotonic() - started < BOUND_S


def _look_at_the_page(browser: Browser, base: str, screenshot: Path) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    try:
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(base + "/explorer")
        page.locator(".top-nav a", has_text="Consortium").click()
        expect(page.locator("h1")).to_have_text("coldtrail.example/log")
        health = page.locator("#health tbody tr")
        expect(health).to_have_count(3)
        assert health.nth(0).inner_text().split("\t")[0] == "packer (this node)"
        expect(health.nth(0).locator(".state")).to_have_text("up to date")
        expect(health.nth(2).locator(".state")).to_have_text("behind")
        assert int(health.nth(2).get_attribute("data-behind") or 0) > 0
        expect(page.locator("#this-node")).to_contain_text("Cosigning")
        expect(page.locator("#this-node")).to_contain_text("ok")
        expect(page.locator("#alerts")).to_have_count(0)
        expect(page.locator("#checkpoints tbody tr").first).to_contain_text("final")
        # The raw policy is folded away until asked for.
        expect(page.locator("#policy pre")).to_be_hidden()
        page.locator("#policy summary").click()
        expect(page.locator("#policy pre")).to_contain_text("quorum")
        color = page.eval_on_selector(
            "#health tbody tr:nth-child(3) .state", "e => getComputedStyle(e).color"
        )
        assert color == "rgb(138, 90, 0)"  # the warning colour of "behind"
        page.screenshot(path=str(screenshot), full_page=True)
        assert all(u.startswith(base) for u in requests), requests
    finally:
        context.close()
