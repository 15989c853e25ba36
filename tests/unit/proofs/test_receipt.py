"""Ingest receipts: only a receipt that proves the batch is in the log verifies."""

from __future__ import annotations

import copy

import pytest

from bench.sample_bundle import make_ledger
from proofs.errors import FormatError, ProofsError, VerificationError
from proofs.receipt import Receipt, sign_receipt, verify_receipt


@pytest.fixture(scope="module")
def ledger():
    return make_ledger()


def _receipt(ledger, index: int = 1) -> dict:
    m = ledger.manifests[index]
    r = Receipt(
        gw=m.gw,
        batch_seq=m.batch_seq,
        manifest_hash=m.hash_hex(),
        leaf_index=index,
        log_proof=tuple(ledger.log.inclusion_proof(index)),
        checkpoint=ledger.checkpoint_note,
        accepted_at=1,
    )
    return sign_receipt(r, ledger.log_signer.key).to_dict()


def test_valid_receipt_verifies(ledger) -> None:
    vkey = ledger.log_signer.verifier.to_vkey()
    receipt, checkpoint = verify_receipt(_receipt(ledger), ledger.manifests[1], vkey)
    assert receipt.leaf_index == 1 and checkpoint.size == 3


def test_receipt_for_another_manifest_fails(ledger) -> None:
    vkey = ledger.log_signer.verifier.to_vkey()
    with pytest.raises(VerificationError) as e:
        verify_receipt(_receipt(ledger, 1), ledger.manifests[2], vkey)
    assert e.value.code == "receipt-mismatch"


def test_receipt_signed_by_another_key_fails(ledger) -> None:
    other = make_ledger(seed=21).log_signer.verifier.to_vkey()
    with pytest.raises(ProofsError):
        verify_receipt(_receipt(ledger), ledger.manifests[1], other)


def test_tampered_receipt_fields_fail(ledger) -> None:
    vkey = ledger.log_signer.verifier.to_vkey()
    good = _receipt(ledger)
    for field, value in (("leaf_index", 2), ("accepted_at", 2), ("log_proof", [])):
        bad = copy.deepcopy(good)
        bad["receipt"][field] = value
        with pytest.raises(VerificationError):
            verify_receipt(bad, ledger.manifests[1], vkey)


def test_garbage_receipts_are_format_errors(ledger) -> None:
    vkey = ledger.log_signer.verifier.to_vkey()
    for garbage in (None, [], {"receipt": {}}, {"receipt": {"log_proof": ["!!"]}}):
        with pytest.raises(FormatError):
            verify_receipt(garbage, ledger.manifests[1], vkey)
