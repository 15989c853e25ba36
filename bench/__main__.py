"""`make bench`: every side-by-side benchmark, or the ones named on the command line.

python -m bench                 # all
python -m bench merkle signing  # some
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time

BENCHES = {
    "merkle": "bench.merkle_vs_pymerkle",
    "signing": "bench.signing_vs_openssl",
    "gateway": "bench.gateway_vs_thingsboard",
    "anchor": "bench.anchor_ingest_query",
    "anchor-scale": "bench.anchor_log_scale",
    "anchor-pg": "bench.anchor_postgres",
    "e2e": "bench.e2e_latency",
    "consortium": "bench.consortium",
    "coldchain": "bench.coldchain",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"unknown bench {unknown}; choose from {list(BENCHES)}", file=sys.stderr)
        return 2
    load = os.getloadavg()
    print(
        f"coldtrail bench on {platform.node()}: {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        " (figures are medians; a busy machine lowers both sides alike)"
    )
    for name in names:
        start = time.monotonic()
        importlib.import_module(BENCHES[name]).run()
        print(f"   ({name}: {time.monotonic() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
