"""``coldtrail-verify BUNDLE``: check a proof bundle offline.

Exit codes: 0 valid, 1 invalid (the first reason is printed), 2 unreadable
bundle or usage error. It imports ``proofs`` only and opens no socket.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .bundle import MAX_BUNDLE_BYTES, verify_bundle
from .errors import FormatError, ProofsError, VerificationError

__all__ = ["main"]

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coldtrail-verify",
        description="Verify a coldtrail proof bundle offline: record signatures, batch "
        "inclusion, log inclusion, checkpoint signature and cosignature quorum.",
    )
    p.add_argument("bundle", help="path to bundle.json, or - for standard input")
    p.add_argument(
        "--log-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="trusted log verifier key (name+hexid+base64); repeatable. Without it the "
        "key inside the bundle is used and the result is reported as unpinned.",
    )
    p.add_argument(
        "--cosigner",
        action="append",
        default=[],
        metavar="VKEY",
        help="trusted cosigner verifier key (type 0x04); repeatable",
    )
    p.add_argument("--quorum", type=int, default=None, help="cosignatures required")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_UNREADABLE if e.code else EXIT_VALID
    try:
        if args.bundle == "-":
            raw = sys.stdin.buffer.read(MAX_BUNDLE_BYTES + 1)
        else:
            path = Path(args.bundle)
            if path.stat().st_size > MAX_BUNDLE_BYTES:
                raise FormatError("bundle is larger than 64 MiB", code="too-large")
            raw = path.read_bytes()
        if len(raw) > MAX_BUNDLE_BYTES:
            raise FormatError("bundle is larger than 64 MiB", code="too-large")
        data = json.loads(raw)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, FormatError) as e:
        print(f"coldtrail-verify: cannot read bundle: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        report = verify_bundle(
            data,
            trusted_log_vkeys=args.log_key,
            trusted_cosigner_vkeys=args.cosigner,
            quorum=args.quorum,
        )
    except VerificationError as e:
        print(f"INVALID: {e}", file=sys.stderr)
        return EXIT_INVALID
    except ProofsError as e:
        # Structurally broken content inside a readable JSON document is still a
        # bundle that fails to prove anything: invalid, with its reason.
        print(f"INVALID: {e}", file=sys.stderr)
        return EXIT_INVALID
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as e:
        print(f"INVALID: bundle is malformed: {e!r} [malformed]", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        trust = "pinned log key" if report.pinned else "UNPINNED: log key taken from the bundle"
        print(
            f"VALID: {report.records} records in {report.batches} batches, "
            f"log {report.origin} size {report.tree_size}, signed by {report.log_signer}, "
            f"{len(report.cosigners)} cosignature(s) ({trust})"
        )
        for q, agg in sorted(report.summary.get("quantities", {}).items()):
            print(f"  {q}: {agg['count']} readings, {agg['min']}..{agg['max']} {agg['unit']}")
    return EXIT_VALID


if __name__ == "__main__":
    raise SystemExit(main())
