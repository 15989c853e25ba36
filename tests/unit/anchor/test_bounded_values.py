"""Issue 9: one implausible value or time in the ledger must not make any read cost more.

Every page and answer over a ledger holding a reading of 1e15 (or a time in the year
285 000) is produced with output and memory bounded like an ordinary lot's: measured
by output size and tracemalloc peak, never by wall-clock time.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from anchor.http.pages import Caller, render_consumer_page, setup_web
from anchor.http.problems import problem_middleware
from anchor.provenance.answer import ProvenanceConfig, answer_for_subject
from support.memory_source import MemoryProvenanceSource
from support.provenance_fixtures import GTIN, LOT, MIN, T0, Journey, standard_journey

HTML = {"Accept": "text/html"}
LOT_PATH = f"/01/{GTIN}/10/{LOT}"
# Far below what the blow-ups cost (gigabytes), far above an ordinary page (~1 MB).
PEAK_BOUND_BYTES = 40_000_000
PAGE_BOUND_BYTES = 400_000
MAX_T = 2**53 - 1  # the largest wall clock a record may carry (proofs.records)


async def _auditor(request: web.Request) -> Caller:
    return Caller(None, "auditor")


def _journey(extra: Any) -> MemoryProvenanceSource:
    j = standard_journey()
    extra(j)
    return j.publish_memory()


def _one_huge_reading(j: Journey) -> None:
    j.reading("truck-07-gw", T0 + 100 * MIN + 1, 1e9)  # 1e9 °C: a broken sensor


def _huge_unlimited_quantity(j: Journey) -> None:
    # A quantity without physical limits; the chart and stats must not care either.
    j.reading("truck-07-gw", T0 + 100 * MIN + 2, 1e15, q="co2")
    j.reading("truck-07-gw", T0 + 100 * MIN + 3, 1e15)


def _huge_negative_reading(j: Journey) -> None:
    j.reading("truck-07-gw", T0 + 100 * MIN + 1, -(2.0**53 - 1))


def _far_future_custody(j: Journey) -> None:
    # A scan and a reading stamped at the end of time: custody at the cold room never ends.
    # (The monotonic clock stays plausible: it is the wall clock that went wrong.)
    j.reading("coldroom-3-gw", MAX_T - 10, 1e15, mono_t=T0 + 500 * MIN)
    j.scan("coldroom-3-gw", MAX_T - 1, "shipping", mono_t=T0 + 501 * MIN)


def _epoch_custody(j: Journey) -> None:
    # A board without RTC: packing "in 1970", readings then and now.
    j.scan("packhouse-gw", 0, "packing", lot="LOT-2026-11A")
    j.reading("packhouse-gw", 1, -1e12)


def _flapping(j: Journey) -> None:
    # Every other reading out of range: one excursion per reading pair.
    j.readings(
        "truck-07-gw", T0 + 60 * MIN + 7, T0 + 300 * MIN, 7_000, lambda i, t: 1e9 if i % 2 else 4.0
    )


CASES = {
    "one-huge-reading": _one_huge_reading,
    "huge-unlimited-quantity": _huge_unlimited_quantity,
    "huge-negative": _huge_negative_reading,
    "far-future-custody": _far_future_custody,
    "epoch-custody": _epoch_custody,
    "flapping": _flapping,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_consumer_page_is_bounded_whatever_the_values(case: str) -> None:
    source = _journey(CASES[case])
    config = ProvenanceConfig()
    from anchor.provenance.answer import Subject

    tracemalloc.start()
    try:
        answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), config, T0 + 600 * MIN)
        page = render_consumer_page(source, config, answer)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(page.encode()) < PAGE_BOUND_BYTES, len(page)
    assert peak < PEAK_BOUND_BYTES, peak
    assert page.count("<text ") < 40  # axis labels: a constant, not one per unit of value


@pytest.fixture
async def huge_client(aiohttp_client: Any) -> TestClient:
    j = standard_journey()
    _one_huge_reading(j)
    _far_future_custody(j)
    app = web.Application(middlewares=[problem_middleware()])
    setup_web(app, source=j.publish_memory(), caller=_auditor)
    client: TestClient = await aiohttp_client(app)
    return client


async def test_every_page_and_api_answers_over_huge_values_and_times(
    huge_client: TestClient,
) -> None:
    urls = [
        (LOT_PATH, HTML),
        (LOT_PATH + "?format=json", {}),
        (f"/v1/provenance?gtin={GTIN}&lot={LOT}", {}),
        ("/v1/provenance?gateway=coldroom-3-gw", {}),
        ("/v1/provenance?sensor=probe-coldroom-3-gw&limit=10000", {}),
        (f"/v1/provenance/bundle?gtin={GTIN}&lot={LOT}", {}),
        ("/explorer", {}),
        ("/explorer/blocks/1", {}),
        ("/explorer/gateways/coldroom-3-gw", {}),
        ("/explorer/orgs/fresh-farms", {}),
    ]
    for url, headers in urls:
        tracemalloc.start()
        try:
            resp = await huge_client.get(url, headers=headers)
            body = await resp.read()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert resp.status == 200, (url, body[:300])
        assert len(body) < PAGE_BOUND_BYTES * 4, url
        assert peak < PEAK_BOUND_BYTES, (url, peak)


async def test_far_future_times_are_shown_not_crashed_on(huge_client: TestClient) -> None:
    resp = await huge_client.get(LOT_PATH, headers=HTML)
    text = await resp.text()
    assert resp.status == 200, text[:300]
    assert "after 9999" in text


def test_chart_ticks_are_few_and_nice_for_any_span() -> None:
    from anchor.http.pages import _ticks

    for lo, hi in [
        (0.0, 10.0),
        (-3.0, 9.0),
        (-1e15, 1e15),
        (1.5, 1.5000001),
        (-(2.0**53), 2.0**53),
    ]:
        ticks = _ticks(lo, hi)
        assert 1 <= len(ticks) <= 12, (lo, hi, ticks)
        assert all(lo <= v <= hi for v in ticks)
    assert _ticks(0.0, 10.0) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]


def test_many_excursions_draw_a_bounded_chart_and_list() -> None:
    source = _journey(_flapping)
    config = ProvenanceConfig()
    from anchor.provenance.answer import Subject

    answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), config, T0 + 600 * MIN)
    assert len(answer.excursions()) > 500
    page = render_consumer_page(source, config, answer)
    assert page.count('class="excursion"') <= 640
    doc = answer.to_json()
    truck = next(i for i in doc["timeline"] if i["holder"] == "truck-07")
    [sensor] = truck["sensors"]
    assert len(sensor["excursions"]) <= config.max_listed_per_interval
    assert truck["excursion_count"] == sensor["excursion_count"] > 500
    assert truck["excursion_count"] == len(answer.intervals[1].excursions())
