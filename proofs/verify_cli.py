"""``coldtrail-verify BUNDLE``: check a proof bundle offline;
``coldtrail-verify scorecard EXPORT``: recompute a custodian scorecard from its rows.

Exit codes: 0 valid, 1 invalid (the first reason is printed), 2 unreadable
bundle, export or policy, or a usage error. It imports ``proofs`` only and opens no socket;
the bundle and ``--policy`` files named on the command line are the only files read.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .bundle import (
    MAX_BUNDLE_BYTES,
    BundleReport,
    effective_policy,
    not_attested_sentence,
    verify_bundle,
)
from .claims import RECEIPT_FORMAT, verify_receipt
from .coldchain import duration_words
from .documents import check_file
from .errors import FormatError, ProofsError, VerificationError
from .policy import MAX_POLICY_BYTES, Policy, parse_policy
from .report import check_claims, extract
from .scorecard import verify_scorecard

__all__ = ["main"]

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coldtrail-verify",
        description="Verify a coldtrail proof bundle offline: record signatures, batch "
        "inclusion, log inclusion, checkpoint signature and cosignature quorum.",
        epilog="coldtrail-verify scorecard EXPORT recomputes a custodian scorecard export "
        "instead (coldtrail-verify scorecard --help).",
    )
    p.add_argument(
        "bundle",
        help="path to bundle.json (or an auditor's report .html, or a claim receipt), or -"
        " for standard input",
    )
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
        help="trusted cosigner verifier key (type 0x04); repeatable. Needs --log-key.",
    )
    p.add_argument(
        "--quorum",
        type=int,
        default=None,
        help="how many of the pinned cosigners must have cosigned (default: 1 when "
        "cosigners are pinned; the bundle's own quorum never lowers it)",
    )
    p.add_argument(
        "--policy",
        metavar="FILE",
        help="C2SP tlog-policy file: its log lines pin the log key, its witness, group "
        "and quorum lines the cosignatures required (instead of --cosigner/--quorum)",
    )
    p.add_argument(
        "--require-attestation",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refuse a bundle without the log key's attestation of its subject, verdict "
        "and proven records (default: on when anything is pinned, off otherwise)",
    )
    p.add_argument(
        "--document",
        action="append",
        default=[],
        metavar="FILE",
        help="check a file (a calibration certificate, ...) against the documents the "
        "bundle carries, signed by the log key; a changed file is named with the bytes that "
        "differ; repeatable",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _check_documents(report: BundleReport, paths: Sequence[str]) -> bool:
    """Each file checked against the bundle's documents; True if all are registered."""
    entries = [(d.entry, d.chunks) for d in report.documents]
    ok = True
    for name in paths:
        try:
            data = Path(name).read_bytes()
        except OSError as e:
            print(f"DOCUMENT UNREADABLE: {name}: {e.strerror}", file=sys.stderr)
            ok = False
            continue
        check = check_file(data, entries)
        if check.ok:
            print(f"DOCUMENT OK: {name} {check.sentence()}")
        else:
            print(f"DOCUMENT NOT REGISTERED: {name} {check.sentence()}")
            print(f"coldtrail-verify: {name} {check.sentence()}", file=sys.stderr)
            ok = False
    return ok


def _read_policy(path: str) -> Policy:
    with Path(path).open("rb") as f:
        raw = f.read(MAX_POLICY_BYTES + 1)
    return parse_policy(raw)


def _subject_line(subject: dict[str, Any]) -> str:
    keys = [f"{k} {subject[k]}" for k in ("gtin", "lot", "serial", "sscc", "gateway", "sensor")
            if subject.get(k) is not None]  # fmt: skip
    return ", ".join(keys) or "(none named)"


def _day(t_ms: int) -> str:
    return datetime.datetime.fromtimestamp(t_ms / 1000, datetime.UTC).strftime("%Y-%m-%d")


def _print_report(report: BundleReport) -> None:
    trust = "pinned log key" if report.pinned else "UNPINNED: log key taken from the bundle"
    print(
        f"VALID: {report.records} records in {report.batches} batches, "
        f"log {report.origin} size {report.tree_size}, signed by {report.log_signer}, "
        f"{len(report.cosigners)} cosignature(s) ({trust})"
    )
    subject = report.subject
    print(f"  subject:    {_subject_line(subject)}")
    v = report.verdict
    if v is not None:
        mkt = f", MKT {v.mkt_c:.2f} °C" if v.mkt_c is not None else ""
        print(
            f"  verdict:    {v.status} under profile {v.profile_name} v{v.profile_version}"
            f" ({v.profile_digest[:12]}, {v.rules_version}): recomputed here from the"
            f" {report.readings} proven readings"
        )
        out = v.time_out_of_range_ms
        spent = f"{duration_words(out)} out of range" if out else "never out of range"
        print(f"              {spent}{mkt}")
        for r in v.reasons:
            print(f"              - [{r.code}] {r.message}")
    elif isinstance(subject.get("verdict"), dict):
        print(
            f"  verdict:    {subject['verdict'].get('status')} (the anchor's, from a sample:"
            " every proven reading agrees with it; not recomputed)"
        )
    dispositions = subject.get("dispositions")
    if isinstance(dispositions, list):
        for d in dispositions:
            if not isinstance(d, dict):
                continue
            why = (
                f"overridden by {d.get('by')}: {d.get('reason')}"
                if d.get("cause") == "override"
                else f"by the rule {d.get('rule')}"
            )
            print(f"  disposition: {d.get('disposition')} ({why}) at {d.get('at')} ms")
    for d in report.documents:
        e = d.entry
        until = _day(e.valid_until) if e.valid_until else "no end"
        print(
            f"  document:   {e.label} {e.name!r} for {e.subject_kind} {e.subject}, issued by"
            f" {e.issuer}, valid {_day(e.valid_from)} to {until}; signed by the log key,"
            f" SHA-256 {e.digest[:16]}…"
        )
    compromised = subject.get("compromised")
    if isinstance(compromised, list):
        for c in compromised:
            if not isinstance(c, dict):
                continue
            # Attested with the subject: the anchor says these may be forged.
            line = (
                f"COMPROMISED: {c.get('records')} record(s) from gateway {c.get('gw')} were"
                f" anchored after its key was compromised (since {c.get('compromised_since')}"
                " ms) and may be forged"
            )
            print(f"  {line}")
            print(f"coldtrail-verify: {line}", file=sys.stderr)
    print(f"  checkpoint: {report.origin}, size {report.tree_size}, root {report.root_hex[:16]}…")
    print(f"  cosigned:   {', '.join(report.cosigners) or 'by nobody'}")
    for line in report.policy:
        print(f"  policy:     {line}")
    print(
        f"  proven:     {report.records} records ({report.readings} readings, {report.scans} "
        f"scans, {report.gaps} gaps) from {len(report.gateways)} gateway(s) "
        f"({', '.join(report.gateways)}) in {report.batches} batches, included in checkpoint "
        f"size {report.tree_size}"
    )
    if report.attested:
        fmt = report.attestation_format or ""
        binds = (
            f", summary and exactly these {report.records} records"
            if fmt.endswith(("/v2", "/v3"))
            else " and summary"
        )
        if fmt.endswith("/v3"):
            binds += ", with its cosigners and quorum"
        print(
            f"  attested:   by the log key ({report.attestation_format}): subject, verdict{binds}"
        )
    for q, agg in sorted(report.summary.get("quantities", {}).items()):
        print(f"  {q}: {agg['count']} readings, {agg['min']}..{agg['max']} {agg['unit']}")
    for w in report.warnings:
        print(f"WARNING: {w}")
        print(f"coldtrail-verify: WARNING: {w}", file=sys.stderr)
    if not report.attested:
        # Said on both streams: a script that keeps only one must still see it.
        print(not_attested_sentence(report.records))
        print(f"coldtrail-verify: {not_attested_sentence(report.records)}", file=sys.stderr)


def _receipt_main(data: dict[str, Any], log_keys: Sequence[str]) -> int:
    """A claim receipt (proofs.claims): the event is in the claims log whose checkpoint
    the log key signed under ``<log name>/claims``."""
    try:
        report = verify_receipt(data, log_keys)
    except ProofsError as err:
        print(f"INVALID: {err}", file=sys.stderr)
        return EXIT_INVALID
    e = report.event
    trust = "pinned log key" if report.pinned else "UNPINNED: log key taken from the receipt"
    when = datetime.datetime.fromtimestamp(e.at / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M")
    print(
        f"VALID claim receipt: event {e.n} ({e.state}) of claim {e.claim}, lot {e.lot} of GTIN"
        f" {e.gtin}, by {e.by} at {when} UTC, routed to {e.routed_to} ({trust})"
    )
    print(
        f"  in the claims log at leaf {report.leaf_index} of {report.tree_size}, root"
        f" {report.root_hex[:16]}…"
    )
    for name, label in (("text_sha256", "your words"), ("photo_sha256", "the photo"),
                        ("bundle_sha256", "the lot's bundle when filed"),
                        ("message_sha256", "the message")):  # fmt: skip
        value = getattr(e, name)
        if value:
            print(f"  {label}: SHA-256 {value}")
    if not report.pinned:
        print("coldtrail-verify: WARNING: no log key pinned (--log-key)", file=sys.stderr)
    return EXIT_VALID


def _scorecard_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="coldtrail-verify scorecard",
        description="Recompute every figure of a custodian scorecard export "
        "(coldtrail-scorecard/1, GET /v1/scorecards/{org}) from its per-shipment rows, and "
        "refuse it if a stated figure does not follow or a row rests on a log leaf beyond "
        "its checkpoint.",
    )
    p.add_argument("export", help="path to the export, or - for standard input")
    p.add_argument(
        "--log-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="trusted log verifier key: the export's checkpoint must be signed by it",
    )
    return p


def _scorecard_main(argv: Sequence[str]) -> int:
    try:
        args = _scorecard_parser().parse_args(argv)
    except SystemExit as e:
        return EXIT_UNREADABLE if e.code else EXIT_VALID
    try:
        if args.export == "-":
            raw = sys.stdin.buffer.read(MAX_BUNDLE_BYTES + 1)
        else:
            path = Path(args.export)
            if path.stat().st_size > MAX_BUNDLE_BYTES:
                raise FormatError("export is larger than 64 MiB", code="too-large")
            raw = path.read_bytes()
        if len(raw) > MAX_BUNDLE_BYTES:
            raise FormatError("export is larger than 64 MiB", code="too-large")
        data = json.loads(raw)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, FormatError) as e:
        print(f"coldtrail-verify: cannot read export: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        rows = verify_scorecard(data, args.log_key)
    except ProofsError as e:
        print(f"INVALID: {e}", file=sys.stderr)
        return EXIT_INVALID
    orgs = data["figures"]["orgs"]
    trust = "signed by the pinned log key" if args.log_key else "signature not checked"
    print(
        f"VALID: {len(rows)} shipment(s); every figure recomputed from the rows, which rest"
        f" on log leaves below checkpoint size {data['checkpoint']['tree_size']} ({trust})"
    )
    for org, f in orgs.items():
        rate = f["excursion_rate"]
        print(
            f"  {org}: {f['shipments']} shipment(s), excursion rate"
            f" {'-' if rate is None else f'{rate * 100:.1f} %'},"
            f" {f['degree_minutes_per_shipment']} °C·min per shipment,"
            f" completeness {f['completeness']}, median reading to receipt"
            f" {f['median_receipt_ms']} ms, {f['claims']} claim(s)"
        )
    return EXIT_VALID


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["scorecard"]:
        return _scorecard_main(args_list[1:])
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
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
        stated = None
        if raw.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
            # An auditor's report: the bundle it embeds, and the figures it prints.
            stated = extract(raw)
            data = stated.bundle
        else:
            data = json.loads(raw)
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, FormatError) as e:
        print(f"coldtrail-verify: cannot read bundle: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    if isinstance(data, dict) and data.get("format") == RECEIPT_FORMAT:
        return _receipt_main(data, args.log_key)
    try:
        policy = _read_policy(args.policy) if args.policy else None
        # Checked before the bundle is: a wrong command line is a usage error (exit 2).
        pins = effective_policy(args.log_key, args.cosigner, args.quorum, policy)
    except (OSError, ProofsError) as e:
        print(f"coldtrail-verify: cannot use the pins or policy: {e}", file=sys.stderr)
        return EXIT_UNREADABLE
    require = args.require_attestation
    try:
        report = verify_bundle(
            data,
            trusted_log_vkeys=args.log_key,
            trusted_cosigner_vkeys=args.cosigner,
            quorum=args.quorum,
            policy=policy,
            require_attestation=pins is not None if require is None else require,
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
    if stated is not None:
        try:
            figures = check_claims(stated, report)
        except ProofsError as e:
            print(f"INVALID: {e}", file=sys.stderr)
            return EXIT_INVALID
        print(f"REPORT: the {figures} figures it prints are the ones its bundle proves")
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
        if not report.attested:
            print(f"coldtrail-verify: {not_attested_sentence(report.records)}", file=sys.stderr)
    else:
        _print_report(report)
    if args.document and not _check_documents(report, args.document):
        return EXIT_INVALID
    return EXIT_VALID


if __name__ == "__main__":
    raise SystemExit(main())
