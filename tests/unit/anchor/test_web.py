"""The provenance routes, bundles and explorer against a real aiohttp app and the twin."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from anchor.http.pages import CONTENT_SECURITY_POLICY, Caller, setup_web
from anchor.http.problems import problem_middleware
from proofs.bundle import verify_bundle
from support.memory_source import MemoryProvenanceSource
from support.provenance_fixtures import GTIN, LOT, MIN, SSCC, T0, Journey, standard_journey

HTML = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
JSON = {"Accept": "application/json"}
LOT_PATH = f"/01/{GTIN}/10/{LOT}"


async def _role_from_header(request: web.Request) -> Caller:
    """Test stand-in for token auth: ``Authorization: Test <org> <role>``."""
    value = request.headers.get("Authorization", "")
    if value.startswith("Test "):
        _, org, role = value.split(" ")
        return Caller(org, role)
    return Caller()


def _app(source: MemoryProvenanceSource) -> web.Application:
    app = web.Application(middlewares=[problem_middleware()])
    setup_web(app, source=source, caller=_role_from_header)
    return app


@pytest.fixture
def source() -> MemoryProvenanceSource:
    return standard_journey().publish_memory()


@pytest.fixture
async def client(aiohttp_client: Any, source: MemoryProvenanceSource) -> TestClient:
    return await aiohttp_client(_app(source))


async def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    doc: dict[str, Any] = await resp.json(content_type=None)
    assert doc["status"] == status and doc["type"].endswith("/" + doc["code"])
    return doc


# --- consumer page and content negotiation --------------------------------------------------


async def test_digital_link_serves_the_consumer_page_to_people(client: TestClient) -> None:
    resp = await client.get(LOT_PATH, headers=HTML)
    assert resp.status == 200 and resp.content_type == "text/html"
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    page = await resp.text()
    assert f'data-claim="lot">{LOT}<' in page and f'data-claim="gtin">{GTIN}<' in page
    for step in ("Packed", "Loaded", "Unloaded", "Received"):
        assert f'class="step-name">{step}<' in page
    assert '<svg id="chart"' in page and 'class="band"' in page
    assert 'data-claim="verdict" data-status="pass"' in page
    assert f'data-bundle="/v1/provenance/bundle?gtin={GTIN}&amp;lot={LOT}"' in page
    assert '<script type="module" src="/static/verify.js">' in page
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere


async def test_an_unknown_lot_is_a_404_page_for_people(client: TestClient) -> None:
    resp = await client.get(f"/01/{GTIN}/10/NOPE", headers=HTML)
    assert resp.status == 404 and resp.content_type == "text/html"
    assert "No records yet" in await resp.text()
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


async def test_digital_link_answers_programs_with_json(client: TestClient) -> None:
    for url, headers in ((LOT_PATH, JSON), (LOT_PATH + "?format=json", HTML), (LOT_PATH, {})):
        resp = await client.get(url, headers=headers)
        assert resp.status == 200 and resp.content_type == "application/json"
        doc = await resp.json()
        assert doc["subject"] == {"kind": "lot", "gtin": GTIN, "lot": LOT}
        assert [i["holder"] for i in doc["timeline"]] == ["line-4", "truck-07", "coldroom-3"]
        assert doc["verdict"]["status"] == "pass" and doc["access"] == "aggregates"
        assert "readings" not in doc


async def test_owner_and_auditor_see_raw_readings_the_public_does_not(client: TestClient) -> None:
    owner = await (
        await client.get(LOT_PATH, headers={**JSON, "Authorization": "Test fresh-farms operator"})
    ).json()
    assert owner["access"] == "raw"
    # fresh-farms owns the packhouse and the cold room, not the truck
    assert {r["gw"] for r in owner["readings"]["items"]} == {"packhouse-gw", "coldroom-3-gw"}
    auditor = await (
        await client.get(
            LOT_PATH + "?limit=10", headers={**JSON, "Authorization": "Test audit-co auditor"}
        )
    ).json()
    assert len(auditor["readings"]["items"]) == 10 and auditor["readings"]["total"] == 96
    nxt = auditor["readings"]["next"]
    page2 = await (
        await client.get(
            f"{LOT_PATH}?limit=10&cursor={nxt}",
            headers={**JSON, "Authorization": "Test audit-co auditor"},
        )
    ).json()
    assert page2["readings"]["items"][0] != auditor["readings"]["items"][0]


async def test_values_are_escaped_in_html(aiohttp_client: Any) -> None:
    lot = "<i>&\"'x"
    j = Journey()
    j.gateway("gw", "org", "truck")
    j.scan("gw", T0, "loading", lot=lot)
    j.reading("gw", T0 + MIN, 4.0)
    client = await aiohttp_client(_app(j.publish_memory()))
    resp = await client.get(f"/01/{GTIN}/10/%3Ci%3E%26%22'x", headers=HTML)
    page = await resp.text()
    assert resp.status == 200, page
    assert "<i>" not in page and "&lt;i&gt;&amp;&quot;&#x27;x" in page


async def test_sscc_and_serial_links(aiohttp_client: Any) -> None:
    j = Journey()
    j.gateway("gw", "org", "truck")
    j.scan("gw", T0, "loading", gs1={"00": SSCC})
    j.scan("gw", T0 + MIN, "loading", gs1={"01": GTIN, "21": "SN-42/7"})
    j.reading("gw", T0 + 2 * MIN, 4.0)
    client = await aiohttp_client(_app(j.publish_memory()))
    page = await (await client.get(f"/00/{SSCC}", headers=HTML)).text()
    assert "Shipment" in page and f'data-claim="sscc">{SSCC}<' in page
    doc = await (await client.get(f"/01/{GTIN}/21/SN-42%2F7?format=json")).json()
    assert doc["subject"] == {"kind": "serial", "gtin": GTIN, "serial": "SN-42/7"}
    assert doc["links"]["page"] == f"/01/{GTIN}/21/SN-42%2F7"


# --- strict parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"/01/{GTIN}/10/..%2F..%2Fetc%2Fpasswd", 400, "path-traversal"),
        (f"/01/{GTIN}/10/%2E%2E", 400, "path-traversal"),
        ("/01/09506000134353/10/LOT1", 400, "bad-gtin"),
        ("/01/abc/10/LOT1", 400, "bad-gtin"),
        (f"/01/{GTIN}/10/{'x' * 21}", 400, "bad-lot"),
        (f"/01/{GTIN}/10/lot%00", 400, "bad-lot"),
        ("/00/106141411234567890", 400, "bad-sscc"),
        (f"/01/{GTIN}/99/LOT1", 404, "bad-digital-link"),
        ("/01/../../etc/passwd", 404, "not-found"),  # resolved to /etc/passwd: no route
        (f"/01/{GTIN}/10/UNKNOWN", 404, "not-found"),
        (f"{LOT_PATH}?format=xml", 400, "bad-parameter"),
        (f"{LOT_PATH}?evil=1", 400, "bad-parameter"),
    ],
)
async def test_bad_digital_links_are_problems(
    client: TestClient, path: str, status: int, code: str
) -> None:
    # encoded=True: send the path as written, without the client resolving dot segments
    doc = await _problem(await client.get(URL(path, encoded=True), headers=JSON), status)
    assert doc["code"] == code


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "bad-parameter"),
        (f"gtin={GTIN}", "bad-parameter"),
        (f"gtin={GTIN}&lot={LOT}&sscc=106141411234567897", "bad-parameter"),
        (f"gtin={GTIN}&lot={LOT}&lot=B", "bad-parameter"),
        ("gateway=../x", "bad-parameter"),
        ("gateway=truck-07-gw&from=yesterday", "bad-parameter"),
        ("gateway=truck-07-gw&from=2026-11-18T10:00:00", "bad-parameter"),
        ("gateway=truck-07-gw&from=5&to=4", "bad-parameter"),
        ("gateway=truck-07-gw&limit=0", "bad-parameter"),
        ("gateway=truck-07-gw&cursor=%%%", "bad-cursor"),
    ],
)
async def test_bad_api_queries_are_problems(client: TestClient, query: str, code: str) -> None:
    headers = {"Authorization": "Test audit-co auditor"}
    doc = await _problem(await client.get("/v1/provenance?" + query, headers=headers), 400)
    assert doc["code"] == code


async def test_api_by_lot_sscc_and_gateway(client: TestClient) -> None:
    doc = await (await client.get(f"/v1/provenance?gtin={GTIN}&lot={LOT}")).json()
    assert doc["verdict"]["status"] == "pass"
    resp = await client.get("/v1/provenance?sscc=106141411234567897")
    assert (await _problem(resp, 404))["code"] == "not-found"
    frm, to = T0 + 60 * MIN, T0 + 120 * MIN
    doc = await (await client.get(f"/v1/provenance?gateway=truck-07-gw&from={frm}&to={to}")).json()
    assert doc["stats"][0]["count"] == 12 and doc["access"] == "aggregates"


async def test_api_readings_are_paged_with_a_cursor(client: TestClient) -> None:
    headers = {"Authorization": "Test cool-logistics operator"}
    seen: list[int] = []
    url = "/v1/provenance?gateway=truck-07-gw&from=2026-11-18T00:00:00Z&limit=20"
    while url:
        doc = await (await client.get(url, headers=headers)).json()
        seen.extend(r["seq"] for r in doc["readings"]["items"])
        nxt = doc["readings"]["next"]
        url = f"/v1/provenance?gateway=truck-07-gw&limit=20&cursor={nxt}" if nxt else ""
    assert len(seen) == 48 and seen == sorted(set(seen))


# --- bundles ------------------------------------------------------------------------------


async def test_bundle_download_verifies_offline(
    client: TestClient, source: MemoryProvenanceSource
) -> None:
    resp = await client.get(f"/v1/provenance/bundle?gtin={GTIN}&lot={LOT}")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="coldtrail-bundle-{GTIN}-{LOT}.json"'
    )
    bundle = json.loads(await resp.read())
    report = verify_bundle(bundle, trusted_log_vkeys=[source.log_trust().log_vkey])
    assert report.pinned and report.records >= 4 + 6  # 4 custody scans + extremes
    assert (
        bundle["subject"]["verdict"]["status"] == "pass"
        and bundle["subject"]["verdict"]["complete"]
    )


async def test_gateway_window_bundles_are_for_owners_and_auditors(client: TestClient) -> None:
    url = "/v1/provenance/bundle?gateway=truck-07-gw"
    doc = await _problem(await client.get(url), 403)
    assert doc["code"] == "forbidden"
    other = {"Authorization": "Test fresh-farms operator"}
    await _problem(await client.get(url, headers=other), 403)
    owner = {"Authorization": "Test cool-logistics operator"}
    resp = await client.get(url, headers=owner)
    assert resp.status == 200
    report = verify_bundle(json.loads(await resp.read()))
    assert report.records == 48  # the truck's readings of the window, all proven


async def test_no_checkpoint_yet_is_a_clear_problem(aiohttp_client: Any) -> None:
    client = await aiohttp_client(_app(standard_journey().publish_memory(checkpoint=False)))
    doc = await _problem(await client.get(f"/v1/provenance/bundle?gtin={GTIN}&lot={LOT}"), 404)
    assert doc["code"] == "no-proof-yet"


# --- explorer ----------------------------------------------------------------------------


async def test_explorer_blocks_entries_gateways_orgs(
    client: TestClient, source: MemoryProvenanceSource
) -> None:
    source.sign_checkpoint(T0 + 25 * 3_600_000)  # a second, empty block
    page = await (await client.get("/explorer", headers=HTML)).text()
    assert '<a href="/explorer/blocks/1">1</a>' in page and '<a href="/explorer/blocks/2">2</a>'
    block = source.block(1)
    assert block is not None and block.hash_hex[:16] in page
    resp = await client.get("/explorer/blocks/1")
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    page = await resp.text()
    assert page.count('href="/explorer/gateways/') == block.entries
    assert "coldtrail.test/log" in page  # the signed note is shown
    page = await (await client.get("/explorer/gateways/truck-07-gw")).text()
    assert "Batches" in page and 'href="/explorer/orgs/cool-logistics"' in page
    page = await (await client.get("/explorer/orgs/fresh-farms")).text()
    assert "packhouse-gw" in page and "coldroom-3-gw" in page and "truck-07-gw" not in page
    await _problem(await client.get("/explorer/blocks/99"), 404)
    await _problem(await client.get("/explorer/blocks/-1"), 400)
    await _problem(await client.get("/explorer/gateways/%3Cscript%3E"), 400)


async def test_static_verifier_is_served_and_traversal_is_not(client: TestClient) -> None:
    resp = await client.get("/static/verify.js")
    assert resp.status == 200 and "verifyBundle" in await resp.text()
    resp = await client.get("/static/..%2F..%2Fprovenance.py")
    assert resp.status in (403, 404)


async def test_concurrent_queries_for_one_lot_share_one_computation(
    aiohttp_client: Any, source: MemoryProvenanceSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import anchor.http.pages

    calls = 0
    real = anchor.http.pages.answer_for_subject

    def counting(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args)

    monkeypatch.setattr(anchor.http.pages, "answer_for_subject", counting)
    client = await aiohttp_client(_app(source))
    url = f"/v1/provenance?gtin={GTIN}&lot={LOT}"
    responses = await asyncio.gather(*(client.get(url) for _ in range(20)))
    bodies = [await r.json() for r in responses]
    assert all(r.status == 200 for r in responses)
    assert all(b["verdict"] == bodies[0]["verdict"] for b in bodies)
    assert calls == 1
