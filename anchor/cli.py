"""`coldtrail-anchor`: placeholder until its issue lands."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("coldtrail-anchor: not yet available (see the anchor issue)", file=sys.stderr)
    return 2
