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
from proofs.bundle import _attested_bytes, build_batch_proof, summarize, verify_bundle
from proofs.coldchain import Profile
from proofs.errors import ProofsError, VerificationError
from proofs.records import record_from_dict
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
    # A profile whose top is 4 °C, named by its digest: the proven readings reach 4.89,
    # so the claim "pass" does not follow from them.
    doc["subject"]["profile"]["high_c"] = 4.0
    doc["subject"]["profile"]["mkt_limit_c"] = 4.0
    digest = Profile.from_dict(doc["subject"]["profile"]).digest()
    doc["subject"]["verdict"]["profile"]["digest"] = digest
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


# --- issue 9: the verifier must not be talked into trusting ----------------------------


def _pins(ledger) -> list[str]:
    return [
        "--log-key",
        ledger.log_signer.verifier.to_vkey(),
        "--cosigner",
        ledger.cosigner.verifier.to_vkey(),
    ]


def _without_cosignatures(doc: dict[str, Any]) -> dict[str, Any]:
    """The attack: drop every cosignature line and let the bundle say none are needed."""
    doc = copy.deepcopy(doc)
    head, sigs = doc["checkpoint"].split("\n\n")
    kept = [line for line in sigs.split("\n") if line and "member-a" not in line]
    doc["checkpoint"] = head + "\n\n" + "\n".join(kept) + "\n"
    doc["log"]["quorum"] = 0
    return doc


def _cherry_picked(doc: dict[str, Any], keep) -> dict[str, Any]:
    """Records dropped or repeated, the attestation and the claims it covered removed, and
    the summary recomputed: everything a verifier checks stays consistent."""
    doc = copy.deepcopy(doc)
    for b in doc["batches"]:
        b["records"] = keep(b["records"])
    del doc["attestation"], doc["attestation_format"]
    doc["subject"] = {k: doc["subject"][k] for k in ("gtin", "lot")}
    doc["summary"] = json.loads(
        json.dumps(
            summarize(record_from_dict(e["record"]) for b in doc["batches"] for e in b["records"])
        )
    )
    return doc


def test_pinned_cosigners_without_a_quorum_need_one_cosignature(ledger, bundle) -> None:
    attack = _without_cosignatures(bundle)
    pins = {
        "trusted_log_vkeys": [ledger.log_signer.verifier.to_vkey()],
        "trusted_cosigner_vkeys": [ledger.cosigner.verifier.to_vkey()],
    }
    with pytest.raises(VerificationError) as e:
        verify_bundle(attack, **pins)
    assert e.value.code == "no-quorum"
    report = verify_bundle(bundle, **pins)
    assert report.cosigners == ["member-a.coldtrail.example"] and report.pinned
    assert report.policy[-1] == "quorum pinned-cosigners: met"


def test_the_cli_refuses_the_uncosigned_bundle_and_a_quorum_of_zero(
    tmp_path: Path, ledger, bundle, capsys
) -> None:
    path = tmp_path / "attack.json"
    path.write_text(json.dumps(_without_cosignatures(bundle)))
    assert verify_main([str(path), *_pins(ledger)]) == 1
    assert "[no-quorum]" in capsys.readouterr().err
    good = tmp_path / "bundle.json"
    good.write_text(json.dumps(bundle))
    assert verify_main([str(good), *_pins(ledger), "--quorum", "0"]) == 2
    assert "[bad-quorum]" in capsys.readouterr().err
    assert verify_main([str(good), *_pins(ledger), "--quorum", "2"]) == 2


def test_the_bundles_own_quorum_can_raise_a_pinned_policy_but_never_lower_it(
    ledger, bundle
) -> None:
    doc = copy.deepcopy(bundle)
    doc["log"]["quorum"] = 2  # a claim the checkpoint does not meet
    with pytest.raises(VerificationError) as e:
        verify_bundle(
            doc,
            trusted_log_vkeys=[ledger.log_signer.verifier.to_vkey()],
            trusted_cosigner_vkeys=[ledger.cosigner.verifier.to_vkey()],
        )
    assert e.value.code == "no-quorum"


def test_a_policy_file_pins_the_log_and_the_quorum(tmp_path: Path, ledger, bundle, capsys) -> None:
    log, member = ledger.log_signer.verifier.to_vkey(), ledger.cosigner.verifier.to_vkey()
    other = make_ledger(seed=14).cosigner.verifier.to_vkey()
    good = tmp_path / "bundle.json"
    good.write_text(json.dumps(bundle))
    policy = tmp_path / "policy.txt"
    policy.write_text(
        f"log {log}\nwitness A {member}\nwitness B {other}\ngroup g any A B\nquorum g\n"
    )
    assert verify_main([str(good), "--policy", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "group g: 1 of 2 needed, 1 witnessed (A): met" in out and "quorum g: met" in out
    policy.write_text(
        f"log {log}\nwitness A {member}\nwitness B {other}\ngroup g all A B\nquorum g\n"
    )
    assert verify_main([str(good), "--policy", str(policy)]) == 1
    assert "[no-quorum]" in capsys.readouterr().err
    impostor = make_ledger(seed=15).log_signer.verifier.to_vkey()
    policy.write_text(f"log {impostor}\nwitness A {member}\nquorum A\n")
    assert verify_main([str(good), "--policy", str(policy)]) == 1
    assert "[log-key-mismatch]" in capsys.readouterr().err
    policy.write_text(f"log {log}\nwitness A {member}\nquorum B\n")
    assert verify_main([str(good), "--policy", str(policy)]) == 2
    assert "[policy-undefined-name]" in capsys.readouterr().err
    policy.write_text(f"log {log}\nwitness A {member}\nquorum A\n")
    assert verify_main([str(good), "--policy", str(policy), "--quorum", "1"]) == 2
    assert "[conflicting-pins]" in capsys.readouterr().err


def test_a_cherry_picked_bundle_is_flagged_and_refused_when_pinned(
    tmp_path: Path, ledger, bundle, capsys
) -> None:
    picked = _cherry_picked(bundle, lambda records: records[:1])
    report = verify_bundle(picked)
    assert not report.attested and report.records == 3
    path = tmp_path / "picked.json"
    path.write_text(json.dumps(picked))
    assert verify_main([str(path)]) == 0  # unpinned: valid, but said plainly
    out, err = capsys.readouterr()
    sentence = "NOT ATTESTED: this bundle proves only that these 3 records were logged"
    assert sentence in out and sentence in err
    assert verify_main([str(path), *_pins(ledger)]) == 1
    assert "[no-attestation]" in capsys.readouterr().err
    assert verify_main([str(path), *_pins(ledger), "--no-require-attestation"]) == 0
    assert sentence in capsys.readouterr().out
    with pytest.raises(VerificationError) as e:
        verify_bundle(picked, require_attestation=True)
    assert e.value.code == "no-attestation"


def test_duplicated_batches_and_records_are_refused(bundle) -> None:
    twice_batch = _cherry_picked(bundle, lambda records: records)
    twice_batch["batches"].append(copy.deepcopy(twice_batch["batches"][0]))
    twice_batch["summary"] = json.loads(json.dumps(summarize(
        record_from_dict(e["record"]) for b in twice_batch["batches"] for e in b["records"]
    )))  # fmt: skip
    with pytest.raises(VerificationError) as e:
        verify_bundle(twice_batch)
    assert e.value.code == "duplicate-batch"
    twice_record = _cherry_picked(bundle, lambda records: [*records, records[-1]])
    with pytest.raises(VerificationError) as e:
        verify_bundle(twice_record)
    assert e.value.code == "duplicate-record"


def _swapped_selection(ledger) -> tuple[list[Any], dict[str, Any]]:
    """Batch proofs whose summary equals the sample bundle's but one reading differs."""
    selections = [[r.seq for r in records][::3] for records in ledger.batches]
    original = json.loads(json.dumps(summarize(
        r for records, seqs in zip(ledger.batches, selections, strict=True)
        for r in records if r.seq in seqs
    )))  # fmt: skip
    for bi, records in enumerate(ledger.batches):
        for old in selections[bi]:
            for new in (r.seq for r in records if r.seq not in selections[bi]):
                trial = [list(s) for s in selections]
                trial[bi] = sorted([s for s in trial[bi] if s != old] + [new])
                chosen = [
                    r
                    for recs, seqs in zip(ledger.batches, trial, strict=True)
                    for r in recs
                    if r.seq in seqs
                ]
                if json.loads(json.dumps(summarize(chosen))) == original:
                    return [
                        build_batch_proof(m, recs, seqs, i, ledger.log.inclusion_proof(i))
                        for i, (m, recs, seqs) in enumerate(
                            zip(ledger.manifests, ledger.batches, trial, strict=True)
                        )
                    ], original
    raise AssertionError("no swap keeps the summary")


def test_the_attestation_binds_exactly_the_proven_records(ledger, bundle) -> None:
    # Without a verdict claim (which a swap would also break: it is recomputed from the
    # proven readings), only the attestation can tell the selections apart.
    bundle = copy.deepcopy(bundle)
    del bundle["subject"]["verdict"], bundle["subject"]["profile"]
    bundle["attestation"] = base64.b64encode(
        ledger.log_signer.key.sign(_attested_bytes(bundle))
    ).decode()
    verify_bundle(bundle)
    proofs, summary = _swapped_selection(ledger)
    swapped = copy.deepcopy(bundle)
    swapped["batches"] = [p.to_dict() for p in proofs]
    assert swapped["summary"] == summary  # nothing but the selection changed
    with pytest.raises(VerificationError) as e:
        verify_bundle(swapped)
    assert e.value.code == "bad-attestation"
    # The same swap under a v1 attestation (subject, summary, checkpoint only) goes
    # through: old bundles still verify, with a warning saying exactly this.
    v1 = copy.deepcopy(swapped)
    del v1["attestation_format"]
    v1["attestation"] = base64.b64encode(ledger.log_signer.key.sign(_attested_bytes(v1))).decode()
    report = verify_bundle(v1)
    assert report.attestation_format == "coldtrail-attestation/v1"
    assert any("not which records are proven" in w for w in report.warnings)


def test_the_cli_says_what_was_proven(tmp_path: Path, ledger, bundle, capsys) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    assert verify_main([str(path), *_pins(ledger)]) == 0
    out = capsys.readouterr().out
    assert "subject:    gtin 09501101530003, lot LOT-4711" in out
    assert "verdict:    pass under profile controlled-cold v1 (065cc9a1f690" in out
    assert "recomputed here from the 8 proven readings" in out
    assert "never out of range, MKT 3.65 °C" in out
    assert "checkpoint: demo.coldtrail.example/log, size 3, root " in out
    assert "policy:     quorum pinned-cosigners: met" in out
    assert (
        "proven:     9 records (8 readings, 1 scans, 0 gaps) from 1 gateway(s) (truck-07) "
        "in 3 batches, included in checkpoint size 3" in out
    )
    assert "exactly these 9 records" in out and "NOT ATTESTED" not in out
