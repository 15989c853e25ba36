"""anchor/http/static/verify.js run by Node: its JCS equals proofs' RFC 8785 bytes, and its
bundle check accepts what ``verify_bundle`` accepts and refuses a flipped bit."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from anchor.provenance.answer import ProvenanceConfig, Subject, answer_for_subject, assemble_bundle
from proofs.canonical import canonical_json
from support.provenance_fixtures import GTIN, LOT, T0, standard_journey

VERIFY_JS = Path(__file__).resolve().parents[3] / "anchor" / "http" / "static" / "verify.js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

_RUNNER = """
import { jcs, verifyBundle, pureJsBackend } from %s;
import { readFileSync } from "node:fs";
const job = JSON.parse(readFileSync(0, "utf8"));
const out = { jcs: job.values.map((v) => jcs(v)), bundles: [] };
const C = await pureJsBackend();
for (const b of job.bundles) {
  try {
    const r = await verifyBundle(C, b, job.vkey);
    out.bundles.push({ ok: true, records: r.records.length });
  } catch (e) {
    out.bundles.push({ ok: false, error: String(e.message) });
  }
}
process.stdout.write(JSON.stringify(out));
"""


def _run_node(tmp: Path, job: dict[str, Any]) -> dict[str, Any]:
    assert NODE is not None
    script = tmp / "run.mjs"
    script.write_text(_RUNNER % json.dumps(VERIFY_JS.as_uri()))
    done = subprocess.run(
        [NODE, str(script)], input=json.dumps(job), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


_EDGE_CASES: list[Any] = [
    0,
    -0.0,
    1e21,
    1e-7,
    5e-324,
    1.7976931348623157e308,
    2**53 - 1,
    -(2**53) + 1,
    0.1 + 0.2,
    123456789012345680000.0,
    4.35,
    -18.0,
    "\u2028\u2029",
    'é\u0000\u001f"\\/',
    "😀",
    # keys sort by UTF-16 code units: the emoji (a surrogate pair, 0xD83D...) before U+FFFF
    {"b": 1, "a": 2, "\u00e9": 3, "z": {"y": [1, {"\U0001f600": 0, "\uffff": 1}]}},
]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-(2**53) + 1, 2**53 - 1)
    if kind == 2:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
    if kind == 3:
        return round(rng.uniform(-40, 40), rng.randint(0, 4))
    if kind == 4:
        alphabet = 'aZ09 _-"\\/\n\té€😀\u2028\u00ff\u0001'
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
    if kind in (5, 6):
        return {
            "".join(rng.choice("abAB_é😀1") for _ in range(3)): _random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 4))
        }
    return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def test_js_jcs_matches_rfc8785(tmp_path: Path) -> None:
    rng = random.Random(8785)
    values = _EDGE_CASES + [_random_value(rng) for _ in range(500)]
    expected = [canonical_json(v).decode() for v in values]
    got = _run_node(tmp_path, {"values": values, "bundles": [], "vkey": ""})
    mismatches = [(v, e, g) for v, e, g in zip(values, expected, got["jcs"], strict=True) if e != g]
    assert mismatches == []


def test_js_bundle_check_agrees_with_proofs(tmp_path: Path) -> None:
    source = standard_journey(excursion=True).publish_memory()
    answer = answer_for_subject(source, Subject.for_lot(GTIN, LOT), ProvenanceConfig(), T0 + 10**8)
    bundle = assemble_bundle(source, answer.proof_keys, {"gtin": GTIN, "lot": LOT}).bundle
    assert bundle is not None
    flipped = json.loads(json.dumps(bundle))
    proof = flipped["batches"][-1]["records"][0]["proof"]
    proof[0] = ("A" if proof[0][0] != "A" else "B") + proof[0][1:]
    other_subject = {**json.loads(json.dumps(bundle)), "subject": {"gtin": GTIN, "lot": "X"}}
    vkey = source.log_trust().log_vkey
    out = _run_node(
        tmp_path, {"values": [], "bundles": [bundle, flipped, other_subject], "vkey": vkey}
    )
    ok, bad_proof, bad_subject = out["bundles"]
    assert ok == {"ok": True, "records": len(answer.proof_keys)}
    assert not bad_proof["ok"] and "inclusion proof" in bad_proof["error"]
    assert not bad_subject["ok"] and "subject" in bad_subject["error"]
