"""Small shared harness: median of repeated runs, one results table, ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def median_rate(work: Callable[[], int], repeats: int = 3) -> tuple[float, list[float]]:
    """Run ``work`` (which returns how many items it did) ``repeats`` times; median items/s."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = work()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates), rates


@dataclass
class Table:
    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, what: str, ours: float, peer: float, unit: str, target: float | None) -> float:
        ratio = ours / peer if peer else float("inf")
        verdict = "" if target is None else ("  ok" if ratio >= target else "  BELOW TARGET")
        tgt = "" if target is None else f" (target >= {target:g})"
        self.rows.append(
            (what, f"{ours:,.0f} {unit}", f"{peer:,.0f} {unit}", f"{ratio:.2f}x{tgt}{verdict}")
        )
        return ratio

    def print(self, peer_name: str) -> None:
        print(f"\n== {self.title}")
        head = ("measure", "coldtrail", peer_name, "ratio")
        widths = [max(len(r[i]) for r in [head, *self.rows]) for i in range(4)]
        for row in [head, *self.rows]:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
