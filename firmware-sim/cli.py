"""`coldtrail-sim`: placeholder until the gateway issue lands."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("coldtrail-sim: not yet available (see the gateway issue)", file=sys.stderr)
    return 2
