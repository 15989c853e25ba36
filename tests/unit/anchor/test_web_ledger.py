"""Provenance through the real app factory: real ingest into a real SQLite ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anchor.provenance.answer import ProvenanceConfig, Subject, answer_for_subject
from proofs.bundle import verify_bundle
from support.provenance_fixtures import GTIN, LOT, T0, serve_journey

LOT_PATH = f"/01/{GTIN}/10/{LOT}"


async def _anchor(aiohttp_client: Any, tmp_path: Path, *, excursion: bool = False) -> Any:
    return await serve_journey(aiohttp_client, tmp_path / "anchor", excursion=excursion)


async def test_ledger_answers_like_the_twin_and_its_bundle_verifies(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client, _tokens, journey = await _anchor(aiohttp_client, tmp_path, excursion=True)
    doc = await (await client.get(LOT_PATH, headers={"Accept": "application/json"})).json()
    twin = answer_for_subject(
        journey.publish_memory(), Subject.for_lot(GTIN, LOT), ProvenanceConfig(), T0 + 86_400_000
    ).to_json()
    assert doc["verdict"] == twin["verdict"] and doc["verdict"]["status"] == "fail"
    assert doc["stats"] == twin["stats"]
    assert [i["holder"] for i in doc["timeline"]] == [i["holder"] for i in twin["timeline"]]
    log = await (await client.get("/v1/log")).json()
    resp = await client.get(f"/v1/provenance/bundle?gtin={GTIN}&lot={LOT}")
    assert resp.status == 200, await resp.text()
    bundle = json.loads(await resp.read())
    assert {"profile", "verdict"} <= set(bundle["subject"]) and bundle["attestation"]
    report = verify_bundle(bundle, trusted_log_vkeys=[log["log_vkey"]])
    assert report.pinned and report.cosigners and report.records == doc["proven_records"]


async def test_tokens_decide_raw_access_and_bad_tokens_are_refused(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client, tokens, _ = await _anchor(aiohttp_client, tmp_path)
    public = await (await client.get(LOT_PATH + "?format=json")).json()
    assert public["access"] == "aggregates"
    auditor = {"Authorization": f"Bearer {tokens['cool-logistics:auditor']}"}
    doc = await (await client.get(LOT_PATH + "?format=json", headers=auditor)).json()
    assert doc["access"] == "raw" and doc["readings"]["total"] == 96
    owner = {"Authorization": f"Bearer {tokens['cool-logistics:operator']}"}
    doc = await (await client.get("/v1/provenance?gateway=truck-07-gw", headers=owner)).json()
    assert doc["access"] == "raw" and len(doc["readings"]["items"]) == 48
    other = {"Authorization": f"Bearer {tokens['fresh-farms:operator']}"}
    doc = await (await client.get("/v1/provenance?gateway=truck-07-gw", headers=other)).json()
    assert doc["access"] == "aggregates" and "readings" not in doc
    resp = await client.get(LOT_PATH + "?format=json", headers={"Authorization": "Bearer ct_nope"})
    assert resp.status == 401 and resp.content_type == "application/problem+json"


async def test_explorer_over_the_ledger(aiohttp_client: Any, tmp_path: Path) -> None:
    client, _, _ = await _anchor(aiohttp_client, tmp_path)
    page = await (await client.get("/explorer")).text()
    assert "Latest blocks" in page and '<a href="/explorer/blocks/1">1</a>' in page
    page = await (await client.get("/explorer/blocks/1")).text()
    assert "Entries (batch manifests)" in page and "/explorer/gateways/" in page
    page = await (await client.get("/explorer/gateways/truck-07-gw")).text()
    assert page.count("<tr><td>") >= 2  # its batches
    page = await (await client.get("/explorer/orgs/fresh-farms")).text()
    assert "packhouse-gw" in page
