"""Claim events and receipts (proofs.claims): what the claims log holds and how a
claimant checks a receipt offline."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from proofs.claims import (
    MAX_PHOTO_BYTES,
    ClaimEvent,
    check_text,
    claims_origin,
    claims_verifier,
    receipt_json,
    sniff_photo,
    verify_receipt,
)
from proofs.errors import FormatError, VerificationError
from proofs.keys import SigningKey
from proofs.merkle import MerkleTree
from proofs.note import Checkpoint, NoteSigner, SignedNote

CLAIM = "0123456789abcdef0123456789abcdef"
T0 = 1_767_225_600_000


def event(n: int = 1, state: str = "received", **changes: Any) -> ClaimEvent:
    fields: dict[str, Any] = {
        "claim": CLAIM, "n": n, "state": state, "by": "claimant", "at": T0 + n,
        "gtin": "09506000134352", "lot": "LOT-1", "routed_to": "polar-haulage",
        "text_sha256": hashlib.sha256(b"warm").hexdigest() if n == 1 else "",
    }  # fmt: skip
    fields.update(changes)
    return ClaimEvent(**fields)


@pytest.mark.parametrize(
    "changes",
    [
        {"claim": "short"},
        {"n": 0},
        {"state": "lost"},
        {"n": 2},  # received is always the first event
        {"gtin": "123"},
        {"lot": "../x"},
        {"routed_to": ""},
        {"by": ""},
        {"text_sha256": "XYZ"},
        {"at": -5},
    ],
)
def test_malformed_events_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(FormatError):
        event(**changes)


def test_events_hold_digests_never_the_words_and_round_trip() -> None:
    e = event()
    assert ClaimEvent.from_dict(e.to_dict()) == e
    statement = e.statement()
    assert statement.startswith(b"coldtrail-claim/v1\n{") and b"warm" not in statement
    assert e.leaf_hash() == hashlib.sha256(b"\x00" + statement).digest()
    with pytest.raises(FormatError):
        ClaimEvent.from_dict({k: v for k, v in e.to_dict().items() if k != "routed_to"})


@pytest.mark.parametrize(
    ("text", "code"),
    [("", "claim-malformed"), ("   ", "claim-malformed"), ("a" * 4_001, "claim-too-large"),
     ("bell\x07", "claim-malformed"), ("csi\x9b31m", "claim-malformed"), (7, "claim-malformed")],
)  # fmt: skip
def test_text_people_write_is_bounded_and_free_of_control_characters(
    text: object, code: str
) -> None:
    with pytest.raises(FormatError) as e:
        check_text(text, "what happened", 4_000)
    assert e.value.code == code


def test_text_keeps_line_breaks_and_any_script_as_plain_characters() -> None:
    assert check_text("  <script>alert(1)</script>\nwarm!\t ", "x", 100) == (
        "<script>alert(1)</script>\nwarm!"
    )
    assert check_text("", "contact", 10, required=False) == ""


def test_photos_are_jpeg_or_png_by_their_bytes_and_bounded() -> None:
    assert sniff_photo(b"\xff\xd8\xff\xe0....") == "image/jpeg"
    assert sniff_photo(b"\x89PNG\r\n\x1a\n....") == "image/png"
    for data in (b"<svg onload=alert(1)>", b"GIF89a", b"%PDF-1.7"):
        with pytest.raises(FormatError) as e:
            sniff_photo(data)
        assert e.value.code == "claim-photo-type"
    with pytest.raises(FormatError) as e:
        sniff_photo(b"\xff\xd8\xff" + b"\x00" * MAX_PHOTO_BYTES)
    assert e.value.code == "claim-too-large"


def _log(key: SigningKey, events: list[ClaimEvent]) -> tuple[NoteSigner, str, list[Any]]:
    main = NoteSigner("anchor.example/log", key)
    signer = NoteSigner(claims_origin(main.name), key)
    tree = MerkleTree([e.leaf_hash() for e in events])
    note = SignedNote.sign(Checkpoint(signer.name, tree.size, tree.root()).to_text(), signer)
    receipts = [
        receipt_json(e, i, note.to_text(), tree.inclusion_proof(i), main.verifier.to_vkey())
        for i, e in enumerate(events)
    ]
    return main, note.to_text(), receipts


def test_a_receipt_verifies_offline_pinned_to_the_ledgers_log_key() -> None:
    key = SigningKey.generate()
    events = [event(), event(2, "answered", by="polar-haulage:t1", text_sha256=""), event()]
    main, _, receipts = _log(key, events)
    report = verify_receipt(receipts[1], [main.verifier.to_vkey()])
    assert report.pinned and report.event == events[1]
    assert (report.leaf_index, report.tree_size) == (1, 3)
    assert not verify_receipt(receipts[0]).pinned  # the receipt's own key: said so
    assert claims_verifier(main.verifier).name == "anchor.example/log/claims"


def test_a_changed_or_forged_receipt_is_refused() -> None:
    key = SigningKey.generate()
    events = [event(), event(2, "resolved", by="polar-haulage:t1", text_sha256="")]
    main, _, receipts = _log(key, events)
    pin = [main.verifier.to_vkey()]
    changed = copy.deepcopy(receipts[1])
    changed["event"]["state"] = "rejected"  # what the operator did, rewritten
    with pytest.raises(VerificationError) as e:
        verify_receipt(changed, pin)
    assert e.value.code == "bad-receipt"
    moved = copy.deepcopy(receipts[1])
    moved["leaf_index"] = 0
    with pytest.raises(VerificationError):
        verify_receipt(moved, pin)
    # Another key's log, however well-formed, does not verify against the pinned key.
    _, _, theirs = _log(SigningKey.generate(), events)
    with pytest.raises(VerificationError):
        verify_receipt(theirs[1], pin)


def test_a_checkpoint_of_the_ledger_itself_cannot_stand_in_for_the_claims_log() -> None:
    key = SigningKey.generate()
    events = [event()]
    main, _, receipts = _log(key, events)
    tree = MerkleTree([events[0].leaf_hash()])
    # Signed by the same key, under the ledger's own name: not a claims checkpoint.
    ledger_note = SignedNote.sign(Checkpoint(main.name, 1, tree.root()).to_text(), main)
    forged = {**receipts[0], "checkpoint": ledger_note.to_text()}
    with pytest.raises(VerificationError) as e:
        verify_receipt(forged, [main.verifier.to_vkey()])
    assert e.value.code == "no-known-signer"


def test_garbage_is_not_a_receipt() -> None:
    for data in (b"not json", "[]", {"format": "coldtrail-bundle/1"}, {"format": None}):
        with pytest.raises(FormatError):
            verify_receipt(data)
