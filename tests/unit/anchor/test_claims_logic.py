"""Claims' own logic: routing, deadlines and the per-client limit (the HTTP and storage
paths run on a real anchor in tests/integration/test_claims.py)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from anchor.errors import AnchorError
from anchor.http.claims import ClaimsContext
from anchor.ledger.model import Claim, Place, StoredClaimEvent
from anchor.provenance.answer import ProvenanceConfig, Subject, answer_for_subject
from anchor.provenance.claims import DAY_MS, ClaimsConfig, claim_json, route
from proofs.claims import ClaimEvent
from support.provenance_fixtures import GTIN, LOT, T0, standard_journey

NOW = T0 + 9 * 3_600_000  # after the journey

PLACES = {"line-4": "fresh-farms", "truck-07": "cool-logistics", "coldroom-3": "fresh-farms"}


@dataclass
class _Places:
    """The two store lookups routing makes."""

    def place(self, place_id: str) -> Place | None:
        org = PLACES.get(place_id)
        return None if org is None else Place(place_id, org, "asset", place_id, 0)

    def gateway(self, gw: str) -> SimpleNamespace | None:
        org = {"packhouse-gw": "fresh-farms", "truck-07-gw": "cool-logistics"}.get(gw)
        return None if org is None else SimpleNamespace(org_id=org)


def _answer(excursion: bool):  # type: ignore[no-untyped-def]
    source = standard_journey(excursion=excursion).publish_memory()
    return answer_for_subject(source, Subject.for_lot(GTIN, LOT), ProvenanceConfig(), NOW)


def test_a_failed_lot_routes_to_the_custodian_of_the_excursion() -> None:
    org, holder, why, owner = route(_answer(True), _Places())  # type: ignore[arg-type]
    assert (org, holder, owner) == ("cool-logistics", "truck-07", "fresh-farms")
    assert "truck-07 (cool-logistics) held the lot" in why


def test_a_lot_without_excursion_routes_to_its_owner() -> None:
    answer = _answer(False)
    assert answer.verdict.status != "fail"
    org, holder, why, owner = route(answer, _Places())  # type: ignore[arg-type]
    assert (org, holder, owner) == ("fresh-farms", "", "fresh-farms")
    assert "the lot's owner fresh-farms answers" in why


def _claim(filed: int, state: str = "received") -> Claim:
    return Claim("a" * 32, GTIN, LOT, filed, "warm", "me@x", "", "", "", "cool-logistics",
                 "truck-07", "why", "fresh-farms", state, filed + 3 * DAY_MS,
                 filed + 30 * DAY_MS, filed)  # fmt: skip


def _received(filed: int) -> StoredClaimEvent:
    ev = ClaimEvent("a" * 32, 1, "received", "claimant", filed, GTIN, LOT, "cool-logistics")
    return StoredClaimEvent(0, ev)


def test_deadlines_are_said_when_missed_and_the_contact_only_to_parties() -> None:
    t = 1_767_225_600_000
    c, events = _claim(t), [_received(t)]
    assert claim_json(c, events, t + DAY_MS, party=False)["overdue"] == []
    assert claim_json(c, events, t + 4 * DAY_MS, party=False)["overdue"] == ["answer"]
    late = claim_json(c, events, t + 31 * DAY_MS, party=True)
    assert late["overdue"] == ["answer", "resolution"] and late["contact"] == "me@x"
    answered = [*events, StoredClaimEvent(1, ClaimEvent("a" * 32, 2, "answered", "c:t", t + 1,
                GTIN, LOT, "cool-logistics", message_sha256="b" * 64), "sorry")]  # fmt: skip
    assert claim_json(c, answered, t + 4 * DAY_MS, party=False)["overdue"] == []
    done = claim_json(_claim(t, "resolved"), answered, t + 31 * DAY_MS, party=False)
    assert done["overdue"] == [] and "contact" not in done


def test_one_client_files_only_so_many_claims_an_hour() -> None:
    ctx = ClaimsContext(None, None, None, None, None, "", str, ClaimsConfig(per_client_per_hour=2),
                        lambda r: "ip:1")  # type: ignore[arg-type]  # fmt: skip
    ctx.admit("ip:1", 0.0)
    ctx.admit("ip:1", 10.0)
    ctx.admit("ip:2", 10.0)  # another client has its own count
    with pytest.raises(AnchorError) as e:
        ctx.admit("ip:1", 20.0)
    assert e.value.code == "rate-limited" and e.value.retry_after_s == 3581
    ctx.admit("ip:1", 3601.0)  # the first one has aged out
