"""Merkle root + inclusion proofs over 100k and 1M leaves: coldtrail vs pymerkle 7.0.

Both sides get the same entries, hash them as RFC 6962 leaves, compute the root and
produce inclusion proofs for the same sample of indexes; the roots are checked to be
equal before any figure is printed. Medians of 3 runs.
"""

from __future__ import annotations

import random
import sys
import time

from proofs import merkle

from ._harness import Table

PROOFS = 10_000


def _entries(n: int) -> list[bytes]:
    return [i.to_bytes(8, "big") for i in range(n)]


def _ours(entries: list[bytes], sample: list[int]) -> tuple[float, float, bytes]:
    start = time.perf_counter()
    tree = merkle.MerkleTree([merkle.leaf_hash(e) for e in entries])
    root = tree.root()
    built = time.perf_counter()
    for i in sample:
        tree.inclusion_proof(i)
    done = time.perf_counter()
    return built - start, done - built, root


def _pymerkle(entries: list[bytes], sample: list[int]) -> tuple[float, float, bytes]:
    from pymerkle import InmemoryTree

    start = time.perf_counter()
    tree = InmemoryTree(algorithm="sha256")
    for e in entries:
        tree.append_entry(e)
    root = tree.get_root()
    built = time.perf_counter()
    size = tree.get_size()
    for i in sample:
        tree.prove_inclusion(i + 1, size)  # pymerkle counts leaves from 1
    done = time.perf_counter()
    return built - start, done - built, root


def run(sizes: tuple[int, ...] = (100_000, 1_000_000), repeats: int = 3) -> list[float]:
    table = Table(f"Merkle: root over N leaves + 10k inclusion proofs (median of {repeats})")
    ratios = []
    for n in sizes:
        entries = _entries(n)
        sample = random.Random(n).sample(range(n), PROOFS)
        ours = [_ours(entries, sample) for _ in range(repeats)]
        peer = [_pymerkle(entries, sample) for _ in range(repeats)]
        if ours[0][2] != peer[0][2]:
            print(f"ROOTS DIFFER at n={n}: not comparable", file=sys.stderr)
            raise SystemExit(1)

        def med(xs: list[float]) -> float:
            return sorted(xs)[len(xs) // 2]

        o_build, o_proof = med([o[0] for o in ours]), med([o[1] for o in ours])
        p_build, p_proof = med([p[0] for p in peer]), med([p[1] for p in peer])
        table.add(f"{n:>9,} leaves: build+root", n / o_build, n / p_build, "leaves/s", None)
        table.add(f"{n:>9,} leaves: proofs", PROOFS / o_proof, PROOFS / p_proof, "proofs/s", None)
        total = table.add(
            f"{n:>9,} leaves: whole job",
            n / (o_build + o_proof),
            n / (p_build + p_proof),
            "leaves/s",
            10,
        )
        ratios.append(total)
    table.print("pymerkle 7.0")
    return ratios


if __name__ == "__main__":
    run()
