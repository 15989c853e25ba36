"""The explorer's consortium page and block cosigners, drawn from a ``GET /v1/consortium``
document (its shape: anchor.consortium.status), on the twin app and as pure renderers."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from anchor.http.pages import (
    CONSORTIUM_VIEW,
    CONTENT_SECURITY_POLICY,
    ConsortiumView,
    policy_words,
    render_consortium,
    setup_web,
)
from anchor.http.problems import problem_middleware
from support.provenance_fixtures import serve_journey, standard_journey

NOW_MS = 1_800_000_000_000
NOW_S = NOW_MS // 1000
HOSTILE = "<i>&\"'x"
POLICY = (
    "log coldtrail.test/log+0badc0de+AAAA http://127.0.0.1:1\n"
    "witness packer packer.test/witness+11111111+BPACKERKEYxxxxxxxxxxxx http://127.0.0.1:1\n"
    "group members 2 packer carrier warehouse\nquorum members\n"
)


def _doc() -> dict[str, Any]:
    """Three members: packer up to date, carrier behind for 20 s, warehouse silent."""

    def cp(height: int, age_s: int, *cosigners: str, final: bool = True) -> dict[str, Any]:
        return {
            "height": height,
            "size": height * 2,
            "root": "AAAA",
            "time": NOW_MS - age_s * 1000,
            "final": final,
            "cosigners": [{"member": m, "at": NOW_S - age_s} for m in cosigners],
        }

    def member(name: str, last: tuple[int, int] | None, missed: tuple[int, int] | None) -> Any:
        return {
            "name": name,
            "cosigner_vkey": f"{name}.test/witness+1234abcd+BKEYOF{name.upper()}0123456789",
            "log_vkey": f"coldtrail.test/log+5678ef01+ALOGOF{name.upper()}0123456789",
            "url": f"http://127.0.0.1:80{len(name)}",
            "last_cosigned": None
            if last is None
            else {"height": last[0], "size": last[0] * 2, "at": NOW_S - last[1]},
            "behind": None if last is None else 10 - last[0] * 2,
            "first_missed": None
            if missed is None
            else {"height": missed[0], "time": NOW_MS - missed[1] * 1000},
        }

    return {
        "origin": "coldtrail.test/log",
        "policy": POLICY,
        "quorum": {"name": "members", "k": 2, "of": 3, "rules": []},
        "log_size": 10,
        "members": [
            member("packer", (5, 20), None),
            member("carrier", (4, 30), (5, 20)),
            member("warehouse", (1, 900), (2, 600)),
        ],
        "this_member": {
            "member": "packer",
            "stream_applied": 42,
            "stream_connected": True,
            "final_size": 10,
            "final_height": 5,
            "reviewed": 10,
            "reviewing": False,
            "cosigning": "ok",
            "refusal": None,
            "split_views": 0,
        },
        "checkpoints": [
            cp(5, 20, "packer", final=False),
            cp(4, 30, "packer", "carrier"),
            cp(2, 600, "packer", "carrier"),
            cp(1, 900, "packer", "carrier", "warehouse"),
        ],
    }


def _row(page: str, member: str) -> str:
    match = re.search(rf'<tr data-member="{re.escape(member)}"[^>]*>.*?</tr>', page)
    assert match, member
    return match.group(0)


def test_policy_in_words() -> None:
    assert policy_words({"name": "members", "k": 2, "of": 3}) == (
        "final when 2 of 3 members have cosigned"
    )
    assert (
        policy_words({"name": "any", "k": 1, "of": 3}) == "final when 1 of 3 members has cosigned"
    )
    assert "no cosignature" in policy_words({"name": "none", "k": None, "of": None})
    assert "quorum both" in policy_words({"name": "both", "k": None, "of": None})


def test_members_health_checkpoints_and_policy() -> None:
    page = render_consortium(_doc(), NOW_MS)
    assert "final when 2 of 3 members have cosigned" in page
    assert "<details><summary>" in page and "group members 2 packer carrier warehouse" in page
    packer, carrier, warehouse = (_row(page, m) for m in ("packer", "carrier", "warehouse"))
    assert 'data-behind="0"' in packer and "up to date" in packer and "(this node)" in packer
    assert "20 s ago" in packer and '<a href="/explorer/blocks/5">5</a>' in packer
    assert 'data-behind="2"' in carrier and ">behind<" in carrier and "30 s ago" in carrier
    assert 'data-behind="8"' in warehouse and "silent for 10 min" in warehouse
    assert "15 min ago" in warehouse and 'data-state="bad"' in warehouse
    # Each checkpoint: a mark per member, and finality.
    row = re.search(r'<tr data-height="5".*?</tr>', page)
    assert row and row.group(0).count('class="cosigned"') == 1 and "not yet" in row.group(0)
    row = re.search(r'<tr data-height="1".*?</tr>', page)
    assert row and row.group(0).count('class="cosigned"') == 3 and ">final<" in row.group(0)
    # Keys shortened, the whole in a title; member URLs linked.
    assert '<code class="key" title="packer.test/witness+1234abcd+BKEYOFPACKER0123456789">' in page
    assert ">1234abcd+BKEYOFPA…</code>" in page
    assert '<a href="http://127.0.0.1:806">http://127.0.0.1:806</a>' in page
    assert 'class="alert"' not in page and 'id="this-node" class="node"' in page


def test_a_member_with_no_recent_cosignature_is_silent() -> None:
    doc = _doc()
    doc["members"][2].update(last_cosigned=None, behind=None, first_missed=None)
    row = _row(render_consortium(doc, NOW_MS), "warehouse")
    assert 'data-behind=""' in row and "silent: no cosignature" in row


def test_refusal_and_split_views_are_shown_in_red_at_the_top() -> None:
    doc = _doc()
    doc["this_member"].update(
        cosigning="refused",
        refusal="entry 7 does not verify",
        split_views=2,
        stream_connected=False,
    )
    page = render_consortium(doc, NOW_MS)
    alerts = re.search(r'<div id="alerts">(.*?)</div>', page)
    assert alerts, page
    assert "refuses to cosign: entry 7 does not verify" in alerts.group(1)
    assert "2 split view(s)" in alerts.group(1)
    assert "not connected to the consortium&#x27;s stream" in alerts.group(1)
    assert page.index('id="alerts"') < page.index('id="health"')
    assert 'id="this-node" class="node-alert"' in page
    assert '<dd class="alert-text">refused: entry 7 does not verify</dd>' in page
    assert '<dd class="alert-text">2</dd>' in page


def test_everything_from_the_document_is_escaped() -> None:
    doc = _doc()
    doc["origin"] = HOSTILE
    doc["policy"] = HOSTILE
    doc["quorum"] = {"name": HOSTILE, "k": None, "of": None}
    for m in doc["members"]:
        m["name"] = HOSTILE + m["name"]
        m["cosigner_vkey"] = HOSTILE + "+" + HOSTILE + "+" + HOSTILE
        m["url"] = "javascript:alert(1)//" + HOSTILE
    for cp in doc["checkpoints"]:
        cp["cosigners"] = [{"member": HOSTILE + "packer", "at": NOW_S}]
    doc["this_member"].update(member=HOSTILE, cosigning="refused", refusal=HOSTILE)
    page = render_consortium(doc, NOW_MS)
    assert "<i>" not in page and "&lt;i&gt;&amp;&quot;&#x27;x" in page
    assert 'href="javascript:' not in page


# --- the routes, on the twin app -----------------------------------------------------------


def _view(doc: dict[str, Any]) -> ConsortiumView:
    def checkpoint(height: int) -> dict[str, Any] | None:
        rows = [cp for cp in doc["checkpoints"] if cp["height"] == height]
        if not rows:
            return None
        return {
            "checkpoint": rows[0],
            "members": [m["name"] for m in doc["members"]],
            "quorum": doc["quorum"],
        }

    def status(this_member: dict[str, Any], limit: int) -> dict[str, Any]:
        out = copy.deepcopy(doc)
        out["this_member"] = this_member
        out["checkpoints"] = out["checkpoints"][:limit]
        return out

    return ConsortiumView(lambda: dict(doc["this_member"]), status, checkpoint)


def _app(member: bool) -> web.Application:
    app = web.Application(middlewares=[problem_middleware()])
    setup_web(app, source=standard_journey().publish_memory())
    if member:
        doc = _doc()
        doc["checkpoints"][0]["height"] = 1  # the twin's ledger has one block
        app[CONSORTIUM_VIEW] = _view(doc)
    return app


@pytest.fixture
async def member_client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(_app(member=True))


async def test_a_member_node_serves_the_page_and_links_it(member_client: TestClient) -> None:
    resp = await member_client.get("/explorer/consortium")
    assert resp.status == 200 and resp.content_type == "text/html"
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    page = await resp.text()
    assert "final when 2 of 3 members have cosigned" in page and 'id="health"' in page
    page = await (await member_client.get("/explorer/consortium?limit=1")).text()
    assert page.count("<tr data-height=") == 1
    resp = await member_client.get("/explorer/consortium?limit=0")
    assert resp.status == 400 and resp.content_type == "application/problem+json"
    home = await (await member_client.get("/explorer")).text()
    assert '<nav class="top-nav">' in home and home.count('href="/explorer/consortium"') == 2


async def test_the_block_page_names_its_cosigners(member_client: TestClient) -> None:
    page = await (await member_client.get("/explorer/blocks/1")).text()
    assert "<h2>Cosignatures</h2>" in page
    assert "Not final yet</span>: 1 of 3 members cosigned" in page
    assert '<li class="cosigned">packer: cosigned' in page
    assert '<li class="uncosigned">warehouse: not cosigned</li>' in page


async def test_a_node_that_is_no_member_has_no_consortium_page(aiohttp_client: Any) -> None:
    client = await aiohttp_client(_app(member=False))
    resp = await client.get("/explorer/consortium")
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    assert (await resp.json())["code"] == "not-found"
    for path in ("/explorer", "/explorer/blocks/1"):
        page = await (await client.get(path)).text()
        assert "/explorer/consortium" not in page and "Cosignatures" not in page


async def test_a_single_node_app_has_no_consortium_page(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """The real app factory on a node with no consortium_policy: no view is bound."""
    client, _, _ = await serve_journey(aiohttp_client, tmp_path / "anchor")
    resp = await client.get("/explorer/consortium", headers={"Accept": "text/html"})
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    resp = await client.get("/v1/consortium")
    assert resp.status == 404
    page = await (await client.get("/explorer")).text()
    assert '<nav class="top-nav"><a href="/explorer">Blocks</a></nav>' in page
    assert "/explorer/consortium" not in page
