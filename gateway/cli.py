"""`coldtrail-gateway`: placeholder until its issue lands."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("coldtrail-gateway: not yet available (see the gateway issue)", file=sys.stderr)
    return 2
