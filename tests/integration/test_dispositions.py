"""Automatic dispositions on a real anchor: batches anchored through ``POST /v1/batches``
decide each lot's disposition by its profile within seconds, signed by the log key and
naming the custodian of the excursion; an operator overrides it only with a reason, and
``verify-ledger`` checks every row's signature.
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

from support.provenance_fixtures import GTIN, LOT, running_anchor, standard_journey

pytestmark = pytest.mark.integration


def _get(base: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + path, timeout=20) as resp:
        doc: dict[str, Any] = json.load(resp)
        return doc


def _page(base: str) -> str:
    req = urllib.request.Request(f"{base}/01/{GTIN}/10/{LOT}", headers={"Accept": "text/html"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        return str(resp.read().decode())


def _post(base: str, path: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("dispositions")
    tokens: dict[str, str] = {}
    extra = "dispositions_interval_s = 0.3\n"
    with running_anchor(tmp, standard_journey(excursion=True), extra_toml=extra,
                        tokens_out=tokens) as base:  # fmt: skip
        yield base, tokens, tmp


def _lot(base: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        doc = _get(base, f"/v1/provenance?gtin={GTIN}&lot={LOT}")
        if doc["disposition"] is not None or time.monotonic() > deadline:
            return doc
        time.sleep(0.2)


def test_a_failed_lot_is_quarantined_naming_the_custodian(anchor) -> None:
    base, _, _ = anchor
    doc = _lot(base)
    assert doc["verdict"]["status"] == "fail"
    d = doc["disposition"]
    assert d is not None, "no disposition within 20 s of anchoring"
    assert (d["disposition"], d["cause"], d["status"]) == ("quarantine", "rule", "fail")
    assert d["rule"] == "controlled-cold v1: fail -> quarantine"
    # truck-07 (cool-logistics) held the lot when it went above 8 °C; fresh-farms packed it.
    assert (d["custodian"], d["owner"], d["by"]) == ("cool-logistics", "fresh-farms", "anchor")
    page = _page(base)
    assert 'data-disposition="quarantine"' in page and "Held in quarantine" in page
    # Deciding again changes nothing: one row, however many passes ran.
    time.sleep(1.0)
    assert len(_get(base, f"/v1/provenance?gtin={GTIN}&lot={LOT}")["disposition_history"]) == 1


def test_only_an_operator_overrides_and_only_with_a_reason(anchor) -> None:
    base, tokens, tmp = anchor
    _lot(base)
    path = f"/v1/lots/{GTIN}/{LOT}/disposition"
    body = {"disposition": "release", "reason": "probe was taped to the door; product tested"}
    status, doc = _post(base, path, body, tokens["fresh-farms:auditor"])
    assert status == 403 and doc["code"] == "forbidden"
    status, doc = _post(base, path, {"disposition": "release", "reason": ""},
                        tokens["fresh-farms:operator"])  # fmt: skip
    assert status == 400 and doc["code"] == "bad-parameter"
    status, doc = _post(base, path, {"disposition": "eat-it", "reason": "why not"},
                        tokens["fresh-farms:operator"])  # fmt: skip
    assert status == 400
    status, doc = _post(base, path, body, tokens["fresh-farms:operator"])
    assert status == 201, doc
    assert (doc["disposition"], doc["cause"], doc["n"]) == ("release", "override", 2)
    assert doc["by"].startswith("fresh-farms:") and doc["attestation"]
    time.sleep(1.0)  # the rule does not undo an override while the verdict stays "fail"
    lot = _get(base, f"/v1/provenance?gtin={GTIN}&lot={LOT}")
    assert lot["disposition"]["cause"] == "override"
    assert lot["disposition"]["reason"] == body["reason"]
    page = _page(base)
    assert "overridden by operator fresh-farms:" in page and "taped to the door" in page
    # Every disposition row is the one the log key signed.
    done = subprocess.run(
        [sys.executable, "-m", "anchor.cli", "--config", str(tmp / "anchor.toml"),
         "verify-ledger", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The bundle carries the override, attested with the subject; the verifier says it.
    bundle = _get(base, f"/v1/provenance/bundle?gtin={GTIN}&lot={LOT}")
    last = bundle["subject"]["dispositions"][-1]
    assert (last["cause"], last["reason"]) == ("override", body["reason"])
    path = tmp / "bundle.json"
    path.write_text(json.dumps(bundle))
    verified = subprocess.run([sys.executable, "-m", "proofs.verify_cli", str(path)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert f"overridden by {last['by']}: {body['reason']}" in verified.stdout
    bundle["subject"]["dispositions"][-1]["reason"] = "nothing happened"  # not attested
    path.write_text(json.dumps(bundle))
    forged = subprocess.run([sys.executable, "-m", "proofs.verify_cli", str(path)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert forged.returncode == 1 and "attestation" in forged.stderr
