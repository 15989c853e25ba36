"""The verdict engine's JavaScript port (anchor/http/static/coldchain.js) in headless
Chromium: it runs the same vectors as the Python (tests/vectors/coldchain/), agrees
with proofs.coldchain.lot_verdict on random lots, and the consumer page it serves
refuses a bundle whose verdict was changed and signed again with the log key."""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from proofs import coldchain as cc
from proofs.bundle import _attested_bytes
from proofs.keystore import load_signing_key
from support.browser import launch_chromium
from support.provenance_fixtures import GTIN, LOT, running_anchor, standard_journey

pytestmark = pytest.mark.integration

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "coldchain"
FILES = sorted(VECTORS.glob("*.json"))
RUN_VECTOR = """async ([vector]) => {
  const cc = await import("/static/coldchain.js");
  const inp = vector.input;
  try {
    if (vector.kind === "mkt") {
      return { mkt_c: cc.meanKineticTemperature(inp.samples, inp.interval_ms) };
    }
    const series = {};
    for (const [id, s] of Object.entries(inp.sensors)) {
      series[id] = cc.series(s.samples, s.interval_ms);
    }
    const profile = cc.profileFromDict(inp.profile);
    const { jcs } = await import("/static/verify.js");
    const bytes = new TextEncoder().encode(jcs(cc.profileToDict(profile)));
    const digest = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)),
      (b) => b.toString(16).padStart(2, "0")).join("");
    return cc.verdict(series, profile, inp.custody_start_ms, inp.custody_end_ms, digest);
  } catch (e) {
    return { error: e.code || String(e) };
  }
}"""
RUN_LOT = """async ([legs, profile, notes, digest]) => {
  const cc = await import("/static/coldchain.js");
  return cc.lotVerdict(legs, cc.profileFromDict(profile), notes, digest);
}"""


@pytest.fixture(scope="module")
def anchor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("cc")
    with running_anchor(tmp, standard_journey()) as base:
        yield base, tmp


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser, anchor: tuple[str, Path]) -> Iterator[Page]:
    context = browser.new_context()
    p = context.new_page()
    p.goto(anchor[0] + "/explorer")  # an origin serving /static (a secure context)
    try:
        yield p
    finally:
        context.close()


def _same(got: Any, want: Any, tolerance: float, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        for key, value in want.items():
            _same(got[key], value, tolerance, f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, tolerance, f"{where}[{i}]")
    elif isinstance(want, float):  # JS has one number type: 5.0 comes back as 5
        assert isinstance(got, int | float) and math.isclose(got, want, abs_tol=tolerance), (
            f"{where}: {got} != {want}"
        )
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_the_js_port_runs_the_shared_vectors(page: Page, path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    got = page.evaluate(RUN_VECTOR, [vector])
    want = vector["expected"]
    if vector["kind"] == "mkt":
        assert math.isclose(got["mkt_c"], want["mkt_c"], abs_tol=vector["tolerance"])
    elif vector["kind"] == "error":
        assert got == {"error": want["error"]}
    else:
        assert "error" not in got, got
        assert got["status"] == want["status"]
        assert got["profile"]["digest"] == want["profile_digest"]
        assert [[r["code"], r["status"], r["sensor"]] for r in got["reasons"]] == want["reasons"]
        by_id = {s["sensor"]: s for s in got["sensors"]}
        assert set(by_id) == set(want["sensors"])
        for sid, figures in want["sensors"].items():
            _same(by_id[sid], figures, vector["tolerance"], sid)


def _strip(v: Any) -> Any:
    """A verdict's JSON without sentences (for people; not compared across languages)."""
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items() if k != "message"}
    if isinstance(v, list):
        return [_strip(x) for x in v]
    return v


def _random_lot(rng: random.Random) -> list[cc.Leg]:
    legs, t = [], rng.randrange(0, 10**12)
    for i in range(rng.randint(1, 3)):
        length = rng.randint(2, 48) * 600_000
        readings: dict[str, list[tuple[int, float]]] = {}
        for s in range(rng.randint(1, 2)):
            step = rng.choice([60_000, 300_000, 900_000])
            base = rng.uniform(-25.0, 30.0)
            samples = []
            at = t + rng.randrange(0, 2 * step)
            while at < t + length:
                value = base + rng.gauss(0, 3)
                samples.append((at, round(value, 2) if rng.random() < 0.8 else value))
                at += step * (rng.choice([1, 1, 1, 1, 3]))  # now and then a gap
            if rng.random() < 0.2 and samples:
                samples.append((samples[0][0], samples[0][1] + 5))  # a duplicate time
            readings[f"gw-{i}/probe-{s}"] = samples
        legs.append(cc.Leg(f"holder-{i}", t, t + length, readings))
        t += length + rng.choice([0, 60_000, 3_600_000])  # hand-overs, some too long
    return legs


@pytest.mark.parametrize("seed", range(12))
def test_the_js_port_agrees_with_the_python_on_random_lots(page: Page, seed: int) -> None:
    rng = random.Random(seed)
    profile = rng.choice(list(cc.STANDARD_PROFILES.values()))
    legs = _random_lot(rng)
    notes = [cc.Reason("calibration-missing", "pass", "no certificate", "gw-0/probe-0")]
    mine = cc.lot_verdict(legs, profile, notes).to_dict()
    js_legs = [{"holder": g.holder, "start_ms": g.start_ms, "end_ms": g.end_ms,
                "readings": {k: [list(p) for p in v] for k, v in g.readings.items()}}
               for g in legs]  # fmt: skip
    got = page.evaluate(RUN_LOT, [js_legs, profile.to_dict(), [n.to_dict() for n in notes],
                                  profile.digest()])  # fmt: skip
    _same(_strip(got), _strip(mine), 1e-9, f"seed {seed}")


def test_a_verdict_changed_and_signed_again_is_refused_by_the_page(
    browser: Browser, anchor: tuple[str, Path]
) -> None:
    base, tmp = anchor
    key = load_signing_key(tmp / "data" / "keys" / "node.key")
    page = browser.new_context().new_page()
    lot_path = f"/01/{GTIN}/10/{LOT}"

    def dishonest_anchor(route: Route) -> None:
        response = route.fetch()
        bundle = response.json()
        sensor = bundle["subject"]["verdict"]["legs"][1]["verdict"]["sensors"][0]
        sensor["max_c"] = sensor["max_c"] - 0.5  # "it never got that warm"
        bundle["attestation"] = base64.b64encode(key.sign(_attested_bytes(bundle))).decode()
        route.fulfill(response=response, body=json.dumps(bundle))

    page.route(f"{base}/v1/provenance/bundle**", dishonest_anchor)
    page.goto(base + lot_path)
    mark = page.locator("#verify")
    expect(mark).to_have_attribute("data-state", "failed", timeout=20_000)
    expect(page.locator("#verify-detail")).to_contain_text(
        "does not follow from the proven readings"
    )
    expect(page.locator("#verify-detail")).to_contain_text("max_c")
    honest = browser.new_context().new_page()
    honest.goto(base + lot_path)
    expect(honest.locator("#verify")).to_have_attribute("data-state", "verified", timeout=20_000)
    expect(honest.locator("#verify-detail")).to_contain_text("recomputed here from the")
