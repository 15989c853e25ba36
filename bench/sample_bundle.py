"""A small, real, signed ledger built with ``proofs`` alone, and its proof bundle.

Used by the tests of ``coldtrail-verify`` and by ``make demo`` until the gateway and
anchor land. Every signature and proof in it is real; nothing is mocked.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from proofs.bundle import build_batch_proof, build_bundle
from proofs.coldchain import CONTROLLED_COLD, Leg, lot_verdict, sensor_id
from proofs.documents import (
    BundleDocument,
    DocumentEntry,
    calibration_notes,
    describe_file,
    sensor_spans,
)
from proofs.keys import SigningKey
from proofs.merkle import MerkleTree
from proofs.note import ALG_COSIGNATURE_V1, Checkpoint, NoteSigner, SignedNote, cosign_checkpoint
from proofs.records import (
    ZERO_HASH,
    ClockEvidence,
    Gap,
    Manifest,
    Reading,
    Scan,
    new_salt,
    sign,
)

T0 = 1_763_712_000_000  # 2025-11-21T08:00:00Z


@dataclass
class SampleLedger:
    gateway_key: SigningKey
    log_signer: NoteSigner
    cosigner: NoteSigner
    manifests: list[Manifest]
    batches: list[list[Reading | Scan | Gap]]
    log: MerkleTree
    checkpoint_note: str


def make_ledger(batches: int = 3, per_batch: int = 8, seed: int = 7) -> SampleLedger:
    rnd = __import__("random").Random(seed)
    gw_key = SigningKey.from_seed(bytes([seed]) * 32)
    log_signer = NoteSigner(
        "demo.coldtrail.example/log", SigningKey.from_seed(bytes([seed + 1]) * 32)
    )
    cosigner = NoteSigner(
        "member-a.coldtrail.example",
        SigningKey.from_seed(bytes([seed + 2]) * 32),
        ALG_COSIGNATURE_V1,
    )
    clk_boot = "6f1c2d8e-0000-4000-8000-000000000001"
    seq, prev = 0, ZERO_HASH
    manifests: list[Manifest] = []
    all_batches: list[list[Reading | Scan | Gap]] = []
    for b in range(1, batches + 1):
        records: list[Reading | Scan | Gap] = []
        for i in range(per_batch):
            seq += 1
            t = T0 + seq * 60_000
            common: dict[str, Any] = {
                "gw": "truck-07",
                "seq": seq,
                "t": t,
                "clk": ClockEvidence(mono_us=seq * 60_000_000, boot=clk_boot, sync=True),
                "salt": new_salt(rnd.randbytes(16)),
                "asset": "truck-07",
            }
            if b == 1 and i == 0:
                rec: Reading | Scan | Gap = Scan(
                    **common,
                    src="scanner-dock-2",
                    raw="010950110153000310LOT-4711\x1d17261231",
                    sym="]C1",
                    gs1={"01": "09501101530003", "10": "LOT-4711", "17": "261231"},
                    step="loading",
                    rp="truck-07",
                )
            else:
                rec = Reading(
                    **common,
                    src="probe-1",
                    q="temperature",
                    val=round(3.0 + rnd.random() * 2, 2),
                    unit="CEL",
                )
            records.append(sign(rec, gw_key))
        tree = MerkleTree([r.leaf_hash() for r in records])
        manifest = sign(
            Manifest(
                gw="truck-07",
                batch_seq=b,
                prev=prev,
                first_seq=records[0].seq,
                last_seq=records[-1].seq,
                count=len(records),
                root=tree.root().hex(),
                opened=records[0].t,
                closed=records[-1].t,
                key=gw_key.key_id,
            ),
            gw_key,
        )
        prev = manifest.hash_hex()
        manifests.append(manifest)
        all_batches.append(records)
    log = MerkleTree([m.leaf_hash() for m in manifests])
    text = Checkpoint(log_signer.name, log.size, log.root()).to_text()
    note = SignedNote.sign(text, log_signer).with_signature(
        cosign_checkpoint(text, cosigner, T0 // 1000 + 3600)
    )
    return SampleLedger(gw_key, log_signer, cosigner, manifests, all_batches, log, note.to_text())


# The calibration certificate of the sample's logger, valid a year either side of T0.
CERTIFICATE = (
    b"%PDF-1.4\n% Calibration certificate DKD-K-12345 for logger truck-07/probe-1\n"
    b"% Points: -20.0 C, 0.0 C, +8.0 C; expanded uncertainty 0.1 K (k=2)\n" + b"%" * 3000
)
YEAR_MS = 365 * 86_400_000


def certificate(log_key: SigningKey) -> BundleDocument:
    """The sample logger's calibration certificate as the anchor registers it."""
    facts = describe_file(CERTIFICATE)
    entry = DocumentEntry(
        facts.digest, "calibration", "sensor", "truck-07/probe-1", "acme",
        "Kalibrierlabor Nord GmbH", T0 - YEAR_MS, T0 + YEAR_MS, "DKD-K-12345.pdf",
        "application/pdf", facts.size, facts.chunk_size, facts.chunks_root, T0 - 86_400_000,
    )  # fmt: skip
    signature = base64.b64encode(log_key.sign(entry.statement())).decode()
    return BundleDocument(entry, facts.chunks, signature)


def verdict_claim(
    records: list[Reading | Scan | Gap], documents: list[DocumentEntry] | None = None
) -> dict[str, Any]:
    """The verdict an anchor would state on these records: one leg on truck-07 from the
    first record to a minute after the last, under controlled cold (proofs.coldchain),
    with what ``documents`` say about its loggers' calibration."""
    times = [r.t for r in records]
    readings: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        if isinstance(r, Reading):
            readings.setdefault(sensor_id(r.gw, r.src), []).append((r.t, r.val))
    leg = Leg("truck-07", min(times), max(times) + 60_000, readings)
    lot = lot_verdict([leg], CONTROLLED_COLD)
    lot = lot.with_notes(calibration_notes(sensor_spans(lot.to_dict()), documents or []))
    return {
        "profile": CONTROLLED_COLD.to_dict(),
        "verdict": {**lot.to_dict(), "complete": True, "readings": len(records)},
    }


def make_bundle(ledger: SampleLedger | None = None) -> dict[str, Any]:
    ledger = ledger or make_ledger()
    proofs = [
        build_batch_proof(
            m,
            records,
            [r.seq for r in records][::3],
            i,
            ledger.log.inclusion_proof(i),
        )
        for i, (m, records) in enumerate(zip(ledger.manifests, ledger.batches, strict=True))
    ]
    proven = [r for p in proofs for r, _, _ in p.records]
    cert = certificate(ledger.log_signer.key)
    return build_bundle(
        log_vkey=ledger.log_signer.verifier.to_vkey(),
        checkpoint_note=ledger.checkpoint_note,
        batches=proofs,
        gateway_keys={"truck-07": ledger.gateway_key.public_key.to_base64()},
        cosigner_vkeys=[ledger.cosigner.verifier.to_vkey()],
        quorum=1,
        subject={
            "gtin": "09501101530003",
            "lot": "LOT-4711",
            **verdict_claim(proven, [cert.entry]),
            "documents": [cert.to_dict()],
        },
        attest=ledger.log_signer.key.sign,
    )


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "var/demo/bundle.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(make_bundle(), indent=2))
    os.replace(tmp, out)
    print(f"wrote a sample proof bundle to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
