"""Proof bundles and `coldtrail-verify`: valid passes, any flipped value fails."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.sample_bundle import make_bundle, make_ledger
from proofs.bundle import _attested_bytes, verify_bundle
from proofs.errors import ProofsError, VerificationError
from proofs.verify_cli import main as verify_main
from support.bundle_flips import flipped, scalars, set_at


@pytest.fixture(scope="module")
def ledger():
    return make_ledger()


@pytest.fixture(scope="module")
def bundle(ledger) -> dict[str, Any]:
    return make_bundle(ledger)


def test_a_real_bundle_verifies(bundle: dict[str, Any]) -> None:
    report = verify_bundle(bundle)
    assert report.records == 9 and report.batches == 3 and report.tree_size == 3
    assert report.cosigners == ["member-a.coldtrail.example"]
    assert not report.pinned
    assert report.summary["quantities"]["temperature"]["count"] == 8


def test_pinned_keys_are_honoured(ledger, bundle: dict[str, Any]) -> None:
    report = verify_bundle(bundle, trusted_log_vkeys=[ledger.log_signer.verifier.to_vkey()])
    assert report.pinned
    impostor = make_ledger(seed=11).log_signer.verifier.to_vkey()
    with pytest.raises(VerificationError):
        verify_bundle(bundle, trusted_log_vkeys=[impostor])


def test_quorum_that_is_not_met_fails(bundle: dict[str, Any]) -> None:
    with pytest.raises(VerificationError) as e:
        verify_bundle(bundle, quorum=2)
    assert e.value.code == "no-quorum"


def test_flipping_any_value_in_the_bundle_makes_it_invalid(bundle: dict[str, Any]) -> None:
    leaves = list(scalars(bundle))
    assert len(leaves) > 150
    survivors = []
    for path, value in leaves:
        tampered = copy.deepcopy(bundle)
        set_at(tampered, path, flipped(value))
        try:
            verify_bundle(tampered)
        except ProofsError:
            continue
        survivors.append(path)
    assert survivors == []


def test_cli_exit_codes(tmp_path: Path, bundle: dict[str, Any], capsys) -> None:
    good = tmp_path / "bundle.json"
    good.write_text(json.dumps(bundle))
    assert verify_main([str(good)]) == 0
    assert "VALID" in capsys.readouterr().out

    bad = copy.deepcopy(bundle)
    bad["batches"][1]["records"][0]["record"]["val"] = 25.0
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert verify_main([str(tmp_path / "bad.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("INVALID:") and "signature" in err

    (tmp_path / "garbage.json").write_bytes(b"\x00\xffnot json")
    assert verify_main([str(tmp_path / "garbage.json")]) == 2
    assert verify_main([str(tmp_path / "missing.json")]) == 2
    assert verify_main([]) == 2
    (tmp_path / "list.json").write_text("[1, 2]")
    assert verify_main([str(tmp_path / "list.json")]) == 1


def test_cli_runs_as_installed_console_script(tmp_path: Path, bundle: dict[str, Any]) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    script = Path(sys.executable).parent / "coldtrail-verify"
    done = subprocess.run([str(script), str(path), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == 9
    done = subprocess.run([str(script), "-"], input="{}", capture_output=True, text=True)
    assert done.returncode == 1 and "coldtrail-bundle/1" in done.stderr


def test_claims_need_the_log_keys_attestation(bundle: dict[str, Any]) -> None:
    unattested = copy.deepcopy(bundle)
    del unattested["attestation"]
    with pytest.raises(VerificationError) as e:
        verify_bundle(unattested)
    assert e.value.code == "unattested-subject"
    forged = copy.deepcopy(bundle)
    forged["attestation"] = make_bundle(make_ledger(seed=12))["attestation"]
    with pytest.raises(VerificationError):
        verify_bundle(forged)


def test_a_verdict_that_contradicts_proven_readings_fails(ledger) -> None:
    doc = make_bundle(ledger)
    doc["subject"]["range"]["high"] = 4.0  # proven readings reach 4.89
    # re-attest, as a lying anchor could: its signature does not make the claim true
    doc["attestation"] = base64.b64encode(ledger.log_signer.key.sign(_attested_bytes(doc))).decode()
    with pytest.raises(VerificationError) as e:
        verify_bundle(doc)
    assert e.value.code == "verdict-mismatch"


def test_pinned_verification_refuses_a_bundle_that_names_other_keys(ledger) -> None:
    doc = make_bundle(ledger)
    pinned_log = ledger.log_signer.verifier.to_vkey()
    pinned_cosigner = ledger.cosigner.verifier.to_vkey()
    other = make_ledger(seed=13)
    doc["log"]["vkey"] = other.log_signer.verifier.to_vkey()
    with pytest.raises(VerificationError) as e:
        verify_bundle(doc, trusted_log_vkeys=[pinned_log])
    assert e.value.code == "log-key-mismatch"
    doc = make_bundle(ledger)
    doc["log"]["cosigners"].append(other.cosigner.verifier.to_vkey())
    with pytest.raises(VerificationError) as e:
        verify_bundle(doc, trusted_log_vkeys=[pinned_log], trusted_cosigner_vkeys=[pinned_cosigner])
    assert e.value.code == "cosigner-mismatch"
