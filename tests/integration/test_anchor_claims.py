"""Consumer claims on a real anchor: filed from the consumer page's form in Chromium
(words escaped, photo kept private), routed to the carrier that held the lot when it
went warm, answered and resolved by its operator only, every event in the signed claims
log with receipts ``coldtrail-verify`` checks; abusive claims are refused with codes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.anchor_http import call, form
from support.provenance_fixtures import GTIN, LOT, T0, running_anchor, standard_journey

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
HOSTILE = '<script>document.title="pwned"</script><img src=x onerror=alert(1)> it was warm'


def _request(
    base: str,
    path: str,
    token: str | None = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    return call(base, path, token, data, headers)


def _json(base: str, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    status, body, _ = call(base, path, token)
    return status, json.loads(body)


def _file(base: str, **parts: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    body, content_type = form(parts, files={"photo": "p.png"} if "photo" in parts else None)
    status, raw, headers = call(
        base,
        f"/v1/lots/{GTIN}/{LOT}/claims",
        None,
        body,
        {"Content-Type": content_type, "Accept": "application/json"},
    )
    return status, json.loads(raw), headers


def _event(base: str, claim: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, raw, _ = _request(
        base, f"/v1/claims/{claim}/events", token, json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    return status, json.loads(raw)


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("claims")
    tokens: dict[str, str] = {}
    extra = "claims_per_lot_per_day = 3\nclaims_per_client_per_hour = 50\n"
    with running_anchor(tmp, standard_journey(excursion=True), extra_toml=extra,
                        tokens_out=tokens) as base:  # fmt: skip
        yield base, tokens, tmp


@pytest.fixture(scope="module")
def filed(anchor) -> dict[str, Any]:
    base, _, _ = anchor
    status, claim, headers = _file(
        base, text=b"The yoghurt was warm and swollen.", contact=b"ana@example.org", photo=PNG
    )
    assert status == 201, claim
    assert headers["Location"] == f"/claims/{claim['id']}"
    return claim


def test_a_claim_goes_to_the_carrier_that_held_the_lot_when_it_went_warm(anchor, filed) -> None:
    base, tokens, _ = anchor
    assert filed["state"] == "received" and len(filed["id"]) == 32
    assert filed["routed_to"] == "cool-logistics" and filed["holder"] == "truck-07"
    assert "held the lot when it went out of its profile" in filed["route_reason"]
    assert "contact" not in filed and "photo_url" not in filed  # the public never sees them
    status, mine = _json(base, f"/v1/claims/{filed['id']}", tokens["cool-logistics:operator"])
    assert status == 200 and mine["contact"] == "ana@example.org"
    status, photo, headers = _request(base, mine["photo_url"], tokens["cool-logistics:operator"])
    assert status == 200 and photo == PNG and headers["X-Content-Type-Options"] == "nosniff"
    assert _request(base, mine["photo_url"])[0] == 403
    assert _request(base, mine["photo_url"], tokens["fresh-farms:auditor"])[0] == 200
    # The packer owns the lot: a party too (it may answer), though the claim is not its.
    owner = _json(base, f"/v1/claims/{filed['id']}", tokens["fresh-farms:operator"])[1]
    assert owner["contact"] == "ana@example.org"
    # The lot's bundle as it stood when the claim was filed: the verdict that failed.
    status, raw, _ = _request(base, f"/v1/claims/{filed['id']}/bundle")
    bundle = json.loads(raw)
    assert status == 200 and bundle["subject"]["verdict"]["status"] == "fail"
    assert filed["bundle_sha256"] == filed["events"][0]["bundle_sha256"] != ""
    status, listing = _json(base, "/v1/claims", tokens["cool-logistics:operator"])
    assert [c["id"] for c in listing["claims"]] == [filed["id"]]
    assert _json(base, "/v1/claims", tokens["fresh-farms:operator"])[1]["claims"] == []
    assert _json(base, "/v1/claims")[0] == 403


def test_only_the_routed_operator_moves_a_claim_and_each_move_is_receipted(
    anchor, filed, tmp_path: Path
) -> None:
    base, tokens, _ = anchor
    cid = filed["id"]
    carrier = tokens["cool-logistics:operator"]
    assert _event(base, cid, tokens["cool-logistics:auditor"], {"state": "answered",
                  "message": "x"})[0] == 403  # fmt: skip
    status, problem = _event(base, cid, carrier, {"state": "answered", "message": ""})
    assert (status, problem["code"]) == (400, "claim-malformed")  # an answer says something
    status, answered = _event(
        base, cid, carrier, {"state": "answered", "message": "Door seal failed; refund sent."}
    )
    assert status == 201 and answered["n"] == 2 and answered["by"].startswith("cool-logistics:")
    status, resolved = _event(base, cid, carrier, {"state": "resolved"})
    assert status == 201 and resolved["n"] == 3
    status, problem = _event(base, cid, carrier, {"state": "answered", "message": "again"})
    assert (status, problem["code"]) == (409, "claim-state")  # resolved is final
    # Every event's receipt verifies offline against the ledger's log key.
    vkey = json.loads(_request(base, f"/v1/claims/{cid}/receipt")[1])["log_vkey"]
    verify = [sys.executable, "-m", "proofs.verify_cli"]
    for n, state in ((1, "received"), (2, "answered"), (3, "resolved")):
        status, raw, _ = _request(base, f"/v1/claims/{cid}/receipt?n={n}")
        assert status == 200
        path = tmp_path / f"receipt-{n}.json"
        path.write_bytes(raw)
        done = subprocess.run([*verify, str(path), "--log-key", vkey], capture_output=True,
                              text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"event {n} ({state}) of claim {cid}" in done.stdout
    forged = json.loads((tmp_path / "receipt-3.json").read_text())
    forged["event"]["state"] = "rejected"
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    done = subprocess.run([*verify, str(tmp_path / "forged.json"), "--log-key", vkey],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and "bad-receipt" in done.stderr


def test_abusive_claims_are_refused_with_a_code_and_lose_nothing(anchor, filed) -> None:
    base, _, _ = anchor
    cases = [
        ({"text": b"warm", "photo": b"<svg onload=alert(1)>"}, 415, "claim-photo-type"),
        ({"text": b"x" * 4_001}, 413, "claim-too-large"),
        ({"text": b"\x1b[2Jwarm"}, 400, "claim-malformed"),
        ({"text": b"\xff\xfe"}, 400, "claim-malformed"),
        ({"contact": b"me"}, 400, "claim-malformed"),  # nothing said
        ({"text": b"warm", "photo": b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024)}, 413,
         "claim-too-large"),
        ({"text": b"warm", "evil": b"1"}, 400, "claim-malformed"),
    ]  # fmt: skip
    for parts, want_status, want_code in cases:
        status, problem, _ = _file(base, **parts)
        assert (status, problem["code"]) == (want_status, want_code), parts.keys()
    assert _request(base, f"/v1/lots/{GTIN}/{LOT}/claims", None, b"{}",
                    {"Content-Type": "application/json"})[0] == 415  # fmt: skip
    assert _json(base, "/v1/claims/" + "0" * 32)[0] == 404
    assert _json(base, "/v1/claims/../../etc")[0] == 404


def test_the_consumer_page_files_a_claim_and_shows_it_escaped(anchor, filed, tmp_path) -> None:
    from playwright.sync_api import expect

    from support.browser import launch_chromium

    base, _, _ = anchor
    photo = tmp_path / "pack.png"
    photo.write_bytes(PNG)
    with launch_chromium() as browser:
        context = browser.new_context(viewport={"width": 412, "height": 915})
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{base}/01/{GTIN}/10/{LOT}")
        page.fill("#claim-what", HOSTILE)
        page.fill("#claim-contact", "+44 20 7946 0000")
        page.set_input_files("#claim-photo", str(photo))
        page.click("#claim-form button[type=submit]")
        page.wait_for_url("**/claims/*")
        expect(page.locator("#claim-state")).to_have_attribute("data-state", "received")
        expect(page.locator("#claim-routed")).to_contain_text("cool-logistics")
        assert page.locator("#claim-text").inner_text() == HOSTILE  # shown, as text
        assert page.locator("#claim-text script, #claim-text img").count() == 0
        assert page.title() != "pwned" and dialogs == []
        assert "7946" not in page.content()  # the contact is not on the claimant's page
        receipt = page.locator("#claim-events a[download]").first.get_attribute("href")
        assert receipt is not None and receipt.endswith("/receipt?n=1")
        shot = tmp_path / "claim.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 5_000
        context.close()


def test_a_lot_gets_only_so_many_claims_a_day(anchor, filed) -> None:
    base, _, _ = anchor
    # Two claims exist (the API's and the page's); the third is the last of the day.
    statuses = [_file(base, text=b"also warm")[0] for _ in range(2)]
    assert statuses == [201, 429]
    status, problem, headers = _file(base, text=b"and again")
    assert (status, problem["code"]) == (429, "rate-limited") and "Retry-After" in headers


def test_the_carriers_scorecard_counts_the_claims_routed_to_it(anchor, filed) -> None:
    base, _, _ = anchor
    period = f"from={T0 - 86_400_000}&to={T0 + 86_400_000}"
    status, card = _json(base, f"/v1/scorecards/cool-logistics?{period}")
    assert status == 200
    rows = [r for r in card["rows"] if r["holder"] == "truck-07"]
    assert len(rows) == 1 and len(rows[0]["claims"]) == 3  # API, page, the day's last
    figures = card["figures"]["orgs"]["cool-logistics"]
    assert (figures["claims"], figures["claims_resolved"]) == (3, 1)
    # Resolved by the carrier's operator within the test: seconds, not days.
    assert 0 <= figures["median_resolution_ms"] < 600_000
    assert (
        _json(base, f"/v1/scorecards/fresh-farms?{period}")[1]["figures"]["orgs"]["fresh-farms"][
            "claims"
        ]
        == 0
    )
