"""Record signing and verification (JCS + Ed25519) vs `openssl speed ed25519` on this machine.

The physical limit is OpenSSL's own raw Ed25519 rate on one core, measured in the same
run; coldtrail's figure includes building the canonical JSON of a real reading record.
Medians of 3 runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from proofs.keys import SigningKey
from proofs.records import ClockEvidence, Reading, new_salt, sign, verify

from ._harness import Table, median_rate

N = 20_000


def openssl_ed25519(seconds: int = 3) -> tuple[float, float]:
    """Raw single-core Ed25519 sign/s and verify/s from `openssl speed`."""
    exe = shutil.which("openssl")
    if exe is None:
        raise SystemExit("openssl is not installed: apt-get install openssl")
    out = subprocess.run(
        [exe, "speed", "-seconds", str(seconds), "ed25519"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"Ed25519\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    if not m:
        raise SystemExit(f"cannot read openssl speed output:\n{out}")
    return float(m.group(1)), float(m.group(2))


def _records(n: int) -> list[Reading]:
    clk = ClockEvidence(mono_us=1, boot="bench", sync=True)
    return [
        Reading(
            gw="truck-07",
            seq=i + 1,
            src=f"probe-{i % 20}",
            t=1_763_712_000_000 + i,
            clk=clk,
            salt=new_salt(os.urandom(16)),
            q="temperature",
            val=-20 + (i % 1000) / 1000,
            unit="CEL",
            asset="truck-07",
        )
        for i in range(n)
    ]


def run(repeats: int = 3) -> tuple[float, float]:
    key = SigningKey.generate()
    records = _records(N)
    signed = [sign(r, key) for r in records]
    pub = key.public_key

    def do_sign() -> int:
        for r in records:
            sign(r, key)
        return len(records)

    def do_verify() -> int:
        for r in signed:
            verify(r, pub)
        return len(signed)

    limits = [openssl_ed25519() for _ in range(repeats)]
    raw_sign = sorted(x[0] for x in limits)[repeats // 2]
    raw_verify = sorted(x[1] for x in limits)[repeats // 2]
    sign_rate, _ = median_rate(do_sign, repeats)
    verify_rate, _ = median_rate(do_verify, repeats)
    table = Table(f"Signing: JCS + Ed25519 on one core vs raw openssl (median of {repeats})")
    s = table.add("sign a reading record", sign_rate, raw_sign, "/s", 0.6)
    v = table.add("verify a reading record", verify_rate, raw_verify, "/s", 0.6)
    table.print("openssl speed ed25519")
    return s, v


if __name__ == "__main__":
    run()
