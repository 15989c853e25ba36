"""``coldtrail-anchor``: set up, run and administer an anchoring node.

Every command reads the same config (``--config`` or ``$COLDTRAIL_ANCHOR_CONFIG``,
then ``COLDTRAIL_ANCHOR_*`` overrides). Exit codes: 0 done, 1 refused or
inconsistent (the reason is printed), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from anchor.auth import (
    add_organisation,
    enroll_gateway,
    issue_token,
    new_gateway,
    new_organisation,
    new_place,
    new_token,
    register_place,
    revoke_gateway,
)
from anchor.config import AnchorConfig, load_config
from anchor.consortium.admin import publish_entry, publish_registry
from anchor.consortium.checkpoints import gather_cosignatures, sign_checkpoint
from anchor.consortium.monitor import Monitor, alert_body
from anchor.consortium.policy_file import load_consortium
from anchor.errors import AnchorError, ConfigError, LedgerCorrupt
from anchor.http.app import create_app, open_signer
from anchor.http.keys import INGESTOR
from anchor.ledger.audit import ProgressBar, verify_ledger
from anchor.ledger.documents import DocumentFiles, new_document, register_document
from anchor.ledger.model import ROLES, ApiToken, Gateway, StoredDocument
from anchor.ledger.ports import LedgerStore
from anchor.ledger.products import (
    load_profile,
    new_product,
    profile_of,
    register_profile,
    set_product,
    stored_profile,
)
from anchor.ledger.registry import Attest, Revocation, attester
from anchor.provenance.answer import parse_gtin
from anchor.storage import describe_store, open_store
from gateway.sdnotify import Notifier
from proofs.documents import DOCUMENT_TYPES, MAX_DOCUMENT_BYTES, SUBJECT_KINDS, lot_subject
from proofs.errors import KeyError_, ProofsError
from proofs.keys import SigningKey
from proofs.keystore import load_signing_key, save_signing_key
from proofs.note import ALG_COSIGNATURE_V1, NoteSigner, NoteVerifier
from proofs.policy import Group, Policy, Witness, parse_policy
from proofs.policy_change import PolicyChange, policy_hash, sign_change

__all__ = ["compose_policy", "consortium_policy", "init_node", "main"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _now_ms() -> int:
    return int(time.time() * 1000)


def _parse_time(text: str) -> int:
    """ms since the epoch from digits (ms) or an ISO 8601 time (UTC if no offset)."""
    if text.isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (ms or ISO 8601)") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def init_node(config: AnchorConfig) -> tuple[str, list[str]]:
    """Create keys (0600, never overwritten), the ledger and its genesis checkpoint.

    A consortium member's ledger starts empty: its policy is composed from every
    member's keys after they exist, and its first checkpoint is the stream's first cut,
    the same on every member."""
    # The ledger holds token hashes and raw readings: owner-only, like the keys.
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (config.node_key_file, config.cosigner_key_file):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            save_signing_key(SigningKey.generate(), path)
    log_signer = NoteSigner(config.log_origin, load_signing_key(config.node_key_file))
    cosigner = NoteSigner(
        config.member_name, load_signing_key(config.cosigner_key_file), ALG_COSIGNATURE_V1
    )
    fresh = not config.store and not config.db_file.exists()
    store = open_store(config)
    if fresh:
        # SQLite gives the -wal and -shm files the mode of the database file.
        config.db_file.chmod(0o600)
    try:
        if not config.consortium_policy:
            signer = open_signer(config, store)
            with store.transaction() as tx:
                sign_checkpoint(tx, signer)
            gather_cosignatures(store, signer)
    finally:
        store.close()
    return log_signer.verifier.to_vkey(), [cosigner.verifier.to_vkey()]


def consortium_policy(config: AnchorConfig) -> str:
    """The C2SP tlog-policy an auditor pins to verify this node's bundles: its log key,
    its consortium members as witnesses, and the quorum checkpoints are finalised with.
    A consortium member prints the consortium's own policy file."""
    if config.policy_file is not None:
        return config.policy_file.read_text()
    signer = open_signer(config)
    members = [NoteVerifier.from_vkey(v) for v in signer.member_vkeys]
    witnesses = tuple(Witness(v.name, v) for v in members)
    k = signer.policy.threshold
    groups = (Group("consortium", k, tuple(w.name for w in witnesses)),) if k else ()
    policy = Policy((signer.log_verifier,), witnesses, groups, "consortium" if k else "none")
    header = (
        f"# tlog-policy (c2sp.org/tlog-policy) for {signer.origin}\n"
        "# verify bundles with: coldtrail-verify BUNDLE --policy THIS_FILE\n"
    )
    return header + policy.to_text()


def compose_policy(origin: str, members: Sequence[Sequence[str]], quorum: int) -> str:
    """A consortium's tlog-policy from each member's ``NAME LOG_VKEY COSIGNER_VKEY URL``:
    every member's log key under ``origin``, every member as a witness at ``URL/witness``,
    and a group of them of which ``quorum`` make a checkpoint final."""
    logs, urls, witnesses = [], [], []
    for name, log_vkey, cosigner_vkey, url in members:
        log_v = NoteVerifier.from_vkey(log_vkey)
        if log_v.name != origin:
            raise ValueError(f"member {name}'s log key is named {log_v.name}, not {origin}")
        logs.append(log_v)
        urls.append(url.rstrip("/") or None)
        witnesses.append(
            Witness(name, NoteVerifier.from_vkey(cosigner_vkey), url.rstrip("/") + "/witness")
        )
    group = Group("members", quorum, tuple(w.name for w in witnesses))
    policy = Policy(tuple(logs), tuple(witnesses), (group,), group.name, tuple(urls))
    return (
        f"# tlog-policy (c2sp.org/tlog-policy) of the consortium that logs {origin}:\n"
        f"# {quorum} of its {len(witnesses)} members cosign a checkpoint before it is final.\n"
        + policy.to_text()
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coldtrail-anchor", description=__doc__.splitlines()[0])
    p.add_argument(
        "--config",
        default=os.environ.get("COLDTRAIL_ANCHOR_CONFIG"),
        help="TOML config (default: $COLDTRAIL_ANCHOR_CONFIG, else built-in defaults)",
    )
    p.add_argument(
        "--store",
        default=None,
        help="the ledger: a postgresql:// URL (overrides the config's store; default: the"
        " SQLite file at db_path)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the node key, member key and ledger; print vkeys")
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--port", type=int, default=None, help="override listen_port")
    org = sub.add_parser("org", help="organisations").add_subparsers(dest="action", required=True)
    org_add = org.add_parser("add")
    org_add.add_argument("id")
    org_add.add_argument("--name", default=None)
    org.add_parser("list")
    for kind in ("asset", "read-point"):
        place = sub.add_parser(kind, help=f"{kind}s, each owned by one organisation")
        place_sub = place.add_subparsers(dest="action", required=True)
        place_add = place_sub.add_parser("add")
        place_add.add_argument("--org", required=True)
        place_add.add_argument("--id", required=True)
        place_add.add_argument("--name", default=None)
        place_list = place_sub.add_parser("list")
        place_list.add_argument("--org", default=None)
    _product_parsers(sub)
    _document_parsers(sub)
    gw = sub.add_parser("gateway", help="gateways").add_subparsers(dest="action", required=True)
    enroll = gw.add_parser("enroll")
    enroll.add_argument("--org", required=True)
    enroll.add_argument("--id", required=True)
    enroll.add_argument("--public-key", required=True, help="base64 raw Ed25519 public key")
    enroll.add_argument(
        "--asset",
        action="append",
        default=[],
        help="an asset of the organisation its records may name (repeat; the first is its"
        " home, the holder of records that name none)",
    )
    enroll.add_argument(
        "--read-point",
        action="append",
        default=[],
        help="a read point of the organisation its scans may name (repeat)",
    )
    revoke = gw.add_parser("revoke")
    revoke.add_argument("--id", required=True)
    revoke.add_argument("--at", type=_parse_time, default=None, help="ms or ISO 8601; now")
    revoke.add_argument("--reason", default="")
    gw.add_parser("list")
    tok = sub.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    create = tok.add_parser("create")
    create.add_argument("--org", required=True)
    create.add_argument("--role", required=True, choices=sorted(ROLES))
    create.add_argument("--label", default="")
    trevoke = tok.add_parser("revoke")
    trevoke.add_argument("--id", required=True, help="the token id (ct_<id>_...)")
    sub.add_parser("checkpoint", help="sign a checkpoint of the current log now")
    sub.add_parser(
        "policy", help="print the C2SP tlog-policy (log key, members, quorum) auditors pin"
    )
    cp_ = sub.add_parser(
        "compose-policy", help="print a consortium's tlog-policy from its members' keys"
    )
    cp_.add_argument(
        "--member",
        nargs=4,
        action="append",
        required=True,
        metavar=("NAME", "LOG_VKEY", "COSIGNER_VKEY", "URL"),
        help="a member: its name, the two vkeys `init` printed, and its node's base URL",
    )
    cp_.add_argument("--quorum", type=int, required=True, help="members needed for finality")
    pc = sub.add_parser(
        "policy-change", help="change a consortium's policy (signed by the quorum in force)"
    ).add_subparsers(dest="action", required=True)
    propose = pc.add_parser("propose", help="a change to NEW_POLICY, signed by this member")
    propose.add_argument("new_policy", help="the new tlog-policy file")
    pc_sign = pc.add_parser("sign", help="add this member's signature to a proposed change")
    pc_sign.add_argument("change", help="the change (JSON) another member proposed")
    pc_submit = pc.add_parser("submit", help="order a change the quorum in force signed")
    pc_submit.add_argument("change")
    pc.add_parser("show", help="the policy in force and the changes since the genesis file")
    mon = sub.add_parser(
        "monitor",
        help="watch every member's checkpoint: signatures, quorum, split views, consistency"
        " from its tiles",
    )
    mon.add_argument("--policy", help="the genesis tlog-policy (default: consortium_policy)")
    mon.add_argument(
        "--url", action="append", default=[], help="a member's base URL (repeat; default:"
        " the URLs of the policy's log lines)",
    )  # fmt: skip
    mon.add_argument("--interval", type=float, default=10.0, help="seconds between polls")
    mon.add_argument("--once", action="store_true", help="poll once; exit 1 on any alarm")
    mon.add_argument("--evidence", help="directory for evidence (default: DATA_DIR/evidence)")
    mon.add_argument("--webhook", help="URL that gets alarms as JSON")
    vl = sub.add_parser("verify-ledger", help="re-verify the whole stored ledger")
    vl.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


async def _serve(config: AnchorConfig) -> None:
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.listen_host, config.listen_port)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        port = runner.addresses[0][1] if runner.addresses else config.listen_port
        print(f"coldtrail-anchor listening on http://{config.listen_host}:{port}", flush=True)
        notifier = Notifier.from_env()
        notifier.ready()
        watchdog = loop.create_task(notifier.watch(lambda: app[INGESTOR].running))
        await stop.wait()
        notifier.stopping()
        watchdog.cancel()
    finally:
        await runner.cleanup()


def _run(args: argparse.Namespace, config: AnchorConfig) -> int:
    cmd = args.command
    if cmd == "init":
        log_vkey, member_vkeys = init_node(config)
        print(f"log vkey:      {log_vkey}")
        for v in member_vkeys:
            print(f"cosigner vkey: {v}")
        print(f"ledger:        {describe_store(config)}")
        print("verify with:   coldtrail-anchor policy > policy.txt")
        print("               coldtrail-verify BUNDLE --policy policy.txt")
        return EXIT_OK
    if cmd == "policy":
        print(consortium_policy(config), end="")
        return EXIT_OK
    if cmd == "monitor":
        return _monitor(args, config)
    if cmd == "compose-policy":
        print(compose_policy(config.log_origin, args.member, args.quorum), end="")
        return EXIT_OK
    if cmd == "serve":
        logging.basicConfig(
            level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        if args.port is not None:
            config = dataclasses.replace(config, listen_port=args.port)
        asyncio.run(_serve(config))
        return EXIT_OK
    store = open_store(config)
    try:
        return _admin(args, config, store)
    finally:
        store.close()


_REGISTRY_COMMANDS = {
    ("org", "add"),
    ("asset", "add"),
    ("read-point", "add"),
    ("gateway", "enroll"),
    ("gateway", "revoke"),
    ("token", "create"),
    ("token", "revoke"),
}


def _product_parsers(sub: Any) -> None:
    product = sub.add_parser(
        "product", help="product master data per GTIN and the profile that judges its lots"
    ).add_subparsers(dest="action", required=True)
    pset = product.add_parser("set", help="add or replace a GTIN's master data")
    pset.add_argument("--gtin", required=True)
    pset.add_argument("--org", required=True, help="the brand owner's organisation")
    pset.add_argument("--name", required=True, help="what people read, e.g. 'Oat yoghurt'")
    pset.add_argument("--description", default="", help="for the FSMA 204 exports")
    pset.add_argument("--pack", default="", help="e.g. 'case of 12 x 500 g'")
    pset.add_argument("--unit", default="C62", help="UN/ECE Rec. 20 unit (C62 each, KGM, CS)")
    pset.add_argument(
        "--profile",
        default="",
        help="controlled-cold, controlled-room, frozen, a registered digest or a JSON file"
        " (default: the anchor's default_profile)",
    )
    product.add_parser("list").add_argument("--org", default=None)
    profile = sub.add_parser(
        "profile", help="cold-chain profiles, registered once under their digest"
    ).add_subparsers(dest="action", required=True)
    profile.add_parser("add").add_argument("profile", help="a standard name or a JSON file")
    profile.add_parser("list")


def _document_parsers(sub: Any) -> None:
    doc = sub.add_parser(
        "document",
        help="calibration certificates and other documents behind verdicts (digest on the"
        " ledger, file beside it)",
    ).add_subparsers(dest="action", required=True)
    add = doc.add_parser("add", help="register a file (PDF, PNG, JPEG or text, up to 20 MiB)")
    add.add_argument("file")
    add.add_argument("--type", required=True, choices=sorted(DOCUMENT_TYPES), dest="doc_type")
    add.add_argument(
        "--subject",
        required=True,
        help="KIND:ID with KIND sensor (gw/source), gateway, asset, lot (GTIN/LOT) or"
        " organisation, e.g. sensor:gw-truck-07/probe-1",
    )
    add.add_argument("--org", required=True, help="the organisation that attaches it")
    add.add_argument("--issuer", required=True, help="who issued it, e.g. the calibration lab")
    add.add_argument("--valid-from", required=True, help="YYYY-MM-DD or RFC 3339 time (UTC)")
    add.add_argument("--valid-until", default="", help="YYYY-MM-DD or RFC 3339; none: no end")
    add.add_argument("--name", default=None, help="what people read (default: the file name)")
    lst = doc.add_parser("list")
    lst.add_argument("--subject", default=None, help="KIND:ID")
    lst.add_argument("--org", default=None)


def _when(text: str, what: str) -> int:
    """A date (YYYY-MM-DD, midnight UTC) or an RFC 3339 time, in ms since 1970."""
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"{what}: {text!r} is not YYYY-MM-DD or an RFC 3339 time") from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


def _subject(text: str) -> tuple[str, str]:
    kind, sep, ident = text.partition(":")
    if not sep or kind not in SUBJECT_KINDS or not ident:
        raise ValueError(f"--subject {text!r} is not KIND:ID with KIND one of"
                         f" {', '.join(SUBJECT_KINDS)}")  # fmt: skip
    if kind == "lot":
        gtin, slash, lot = ident.partition("/")
        if not slash:
            raise ValueError("a lot subject is lot:GTIN/LOT")
        return kind, lot_subject(parse_gtin(gtin), lot)
    return kind, ident


def _documents(args: argparse.Namespace, config: AnchorConfig, store: LedgerStore, now: int) -> int:
    """Documents (anchor.ledger.documents); in a consortium the entry goes through the
    ordering stream like the rest of the registry, the file stays on this node."""
    if args.action == "list":
        kind, ident = _subject(args.subject) if args.subject else (None, None)
        for d in store.documents(kind, ident, args.org):
            e = d.entry
            print(f"{e.digest}\t{e.doc_type}\t{e.subject_kind}:{e.subject}\t{e.org_id}"
                  f"\t{e.status_at(now)}\t{e.name}")  # fmt: skip
        return EXIT_OK
    path = Path(args.file)
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise ValueError(f"{path}: a document is at most {MAX_DOCUMENT_BYTES >> 20} MiB")
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from e
    kind, ident = _subject(args.subject)
    fields: dict[str, Any] = {
        "doc_type": args.doc_type, "subject_kind": kind, "subject": ident, "org_id": args.org,
        "issuer": args.issuer, "valid_from": _when(args.valid_from, "--valid-from"),
        "valid_until": _when(args.valid_until, "--valid-until") if args.valid_until else 0,
        "name": args.name or path.name, "now": now,
    }  # fmt: skip
    files = DocumentFiles(config.documents_dir)
    if config.consortium_policy:
        entry, chunks = new_document(store, data, **fields)
        files.put(data)
        _publish(args, config, store, "document", StoredDocument(entry, chunks))
        doc, new = StoredDocument(entry, chunks), True
    else:
        doc, new = register_document(store, files, data, _attest(config), **fields)
    got = doc.entry
    what = "registered" if new else "was registered already"
    print(f"{got.label} {got.name!r} for {got.subject_kind} {got.subject} {what}:"
          f" sha256 {got.digest}")  # fmt: skip
    return EXIT_OK


def _print_enrolled(g: Gateway) -> None:
    scope = ", ".join(sorted(g.places)) or "no asset or read point"
    print(f"gateway {g.id} enrolled for {g.org_id} with key {g.key_id}; it reports for {scope}")


def _print_revoked(g: Gateway, at: int, now: int) -> None:
    print(f"gateway {g.id} revoked from {g.revoked_at} ms")
    if at < now:
        print(
            f"batches of {g.id} accepted since {at} ms stay in the log (it is append-only);"
            " verify-ledger, answers and bundles flag them as from a compromised gateway",
            file=sys.stderr,
        )


def _print_token(token: str, row: ApiToken) -> None:
    print(token)
    print(f"token {row.id} for {row.org_id} ({row.role}); it is shown only once", file=sys.stderr)


def _consortium_admin(
    args: argparse.Namespace, config: AnchorConfig, store: LedgerStore, now: int
) -> int:
    """A registry change of a consortium member goes through the ordering stream, so
    every member applies it (anchor.consortium.admin); the lists read the store."""
    cmd, action = args.command, args.action
    signer = open_signer(config, store)
    token = ""
    model: Any
    if cmd == "org":
        op, model = "organisation", new_organisation(args.id, args.name, now)
    elif cmd in ("asset", "read-point"):
        op, model = "place", new_place(args.id, args.org, cmd, now, args.name)
    elif action == "enroll":
        home = args.asset[0] if args.asset else None
        places = [*args.asset, *args.read_point]
        op, model = "enrolment", new_gateway(args.id, args.org, args.public_key, home, now, places)
    elif action == "revoke" and cmd == "gateway":
        at = args.at if args.at is not None else now
        op, model = "revocation", Revocation(args.id, at, now, args.reason)
    elif action == "create":
        token, model = new_token(args.org, args.role, now, args.label)
        op = "token"
    else:
        op, model = "token-revocation", (args.id, now)
    seq, applied = publish_registry(config, signer, store, op, model)
    if not applied:
        print(
            f"published as stream entry {seq}; this member's node has not applied it yet"
            " (is `coldtrail-anchor serve` running?)",
            file=sys.stderr,
        )
    if op == "organisation":
        print(f"organisation {model.id} added")
    elif op == "place":
        print(f"{model.kind} {model.id} registered for {model.org_id}")
    elif op == "enrolment":
        _print_enrolled(model)
    elif op == "revocation":
        g = store.gateway(model.gw)
        if g is not None:
            _print_revoked(g, model.at, now)
    elif op == "token":
        _print_token(token, model)
    else:
        print(f"token {args.id} revoked")
    return EXIT_OK


def _products(args: argparse.Namespace, config: AnchorConfig, store: LedgerStore, now: int) -> int:
    """Product master data and profiles (anchor.ledger.products); in a consortium the
    change goes through the ordering stream like the rest of the registry."""
    consortium = bool(config.consortium_policy)
    if args.command == "profile" and args.action == "list":
        for sp in store.profiles():
            p = profile_of(sp)
            print(f"{sp.digest}\t{p.name}\tv{p.version}\t{p.kind}")
        return EXIT_OK
    if args.command == "product" and args.action == "list":
        for pr in store.products(args.org):
            print(f"{pr.gtin}\t{pr.org_id}\t{pr.name}\t{pr.pack}\t{pr.profile[:12] or '-'}")
        return EXIT_OK
    if args.command == "profile":
        profile = load_profile(args.profile, store)
        if consortium:
            row = stored_profile(profile, now)
            _publish(args, config, store, "profile", row)
        else:
            row = register_profile(store, profile, now, _attest(config))
        print(f"profile {profile.name} v{profile.version} registered as {row.digest}")
        return EXIT_OK
    profile_arg = load_profile(args.profile, store) if args.profile else None
    product = new_product(
        parse_gtin(args.gtin), args.org, args.name, now, description=args.description,
        pack=args.pack, unit=args.unit,
        profile=profile_arg.digest() if profile_arg is not None else "",
    )  # fmt: skip
    if consortium:
        if profile_arg is not None and store.profile(product.profile) is None:
            _publish(args, config, store, "profile", stored_profile(profile_arg, now))
        _publish(args, config, store, "product", product)
    else:
        product = set_product(store, product, _attest(config), profile_arg)
    judged = f"profile {profile_arg.name} ({product.profile[:12]})" if profile_arg else (
        "the anchor's default profile")  # fmt: skip
    print(f"product {product.gtin} ({product.name}) set for {product.org_id}; judged by {judged}")
    return EXIT_OK


def _publish(
    args: argparse.Namespace, config: AnchorConfig, store: LedgerStore, op: str, model: Any
) -> None:
    seq, applied = publish_registry(config, open_signer(config, store), store, op, model)
    if not applied:
        print(
            f"published as stream entry {seq}; this member's node has not applied it yet"
            " (is `coldtrail-anchor serve` running?)",
            file=sys.stderr,
        )


def _fetch(url: str) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise OSError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - checked above
        return bytes(resp.read())


def _monitor(args: argparse.Namespace, config: AnchorConfig) -> int:
    """Poll every member's checkpoint (anchor.consortium.monitor) until stopped."""
    path = Path(args.policy) if args.policy else config.policy_file
    if path is None:
        print("coldtrail-anchor monitor: give --policy (or set consortium_policy)", file=sys.stderr)
        return EXIT_USAGE
    genesis = parse_policy(path.read_bytes())
    if args.url:
        members = [(u, u) for u in args.url]
    else:
        names = [w.name for w in genesis.witnesses]
        members = [
            (names[i] if i < len(names) else u, u) for i, u in enumerate(genesis.log_urls) if u
        ]
    if not members:
        print("coldtrail-anchor monitor: the policy names no URLs; give --url", file=sys.stderr)
        return EXIT_USAGE
    evidence = Path(args.evidence) if args.evidence else config.data_dir / "evidence"
    monitor = Monitor(genesis, members, _fetch, evidence)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    alarmed = False
    while True:
        for _, base in members:
            try:
                monitor.follow_changes(base)
                break
            except (OSError, ValueError, ProofsError):
                continue
        events = monitor.poll()
        for e in events:
            mark = "ALARM " if e.alarming else ""
            print(f"{mark}{e.kind:<12} {e.member}: {e.detail}", flush=True)
            for f in e.evidence:
                print(f"             evidence: {f}", flush=True)
        alarms = [e for e in events if e.alarming]
        alarmed = alarmed or bool(alarms)
        if alarms and args.webhook:
            body = json.dumps(alert_body(events)).encode()
            req = urllib.request.Request(  # noqa: S310 - the scheme is checked below
                args.webhook, data=body, headers={"Content-Type": "application/json"}
            )
            try:
                if not args.webhook.startswith(("http://", "https://")):
                    raise OSError("the webhook is not an http(s) URL")
                with urllib.request.urlopen(req, timeout=10):  # noqa: S310 - checked above
                    pass
            except OSError as e:
                print(f"the webhook did not take the alarm: {e}", file=sys.stderr)
        if args.once or stop.wait(args.interval):
            return EXIT_REFUSED if alarmed else EXIT_OK


def _policy_change(args: argparse.Namespace, config: AnchorConfig, store: LedgerStore) -> int:
    """Propose, sign, submit or show a change of the consortium's policy: each member's
    operator signs with its cosigning key; the change takes effect when the quorum of
    the policy in force has signed it and it is ordered on the stream."""
    if not config.consortium_policy:
        print("coldtrail-anchor: this node is not a consortium member", file=sys.stderr)
        return EXIT_USAGE
    signer = open_signer(config, store)
    history = signer.consortium
    assert history is not None
    me = load_consortium(config).me
    key = load_signing_key(config.cosigner_key_file)
    if args.action == "show":
        latest = history.latest
        print(f"# policy version {latest.version}, in force from checkpoint {latest.from_height}")
        print(latest.text, end="")
        for c in history.changes():
            names = ", ".join(n for n, _ in c.signatures)
            print(f"# change to version {c.version}: signed by {names}")
        return EXIT_OK
    if args.action == "propose":
        text = Path(args.new_policy).read_text()
        latest = history.latest
        change = PolicyChange(
            config.log_origin, latest.version + 1, policy_hash(latest.policy), text
        )
    else:
        change = PolicyChange.from_dict(json.loads(Path(args.change).read_text()))
    if args.action in ("propose", "sign"):
        change = sign_change(change, me.name, key)
        print(json.dumps(change.to_dict(), indent=1))
        signed = ", ".join(n for n, _ in change.signatures)
        print(f"signed by {me.name}; signatures so far: {signed}", file=sys.stderr)
        return EXIT_OK
    history.check(change)  # the quorum in force signed it: say so before ordering it
    data = json.dumps(change.to_dict()).encode()
    msg_id = f"policy-{hashlib.sha256(change.statement()).hexdigest()}"
    seq, applied = publish_entry(config, store, "policy", data, msg_id)
    state = "in force here" if applied else "ordered; this member's node has not applied it yet"
    print(f"policy version {change.version} ordered as stream entry {seq}: {state}")
    return EXIT_OK


def _attest(config: AnchorConfig) -> Attest:
    """Registry rows are signed with the log key (docs/adr/0311)."""
    return attester(load_signing_key(config.node_key_file))


def _admin(args: argparse.Namespace, config: AnchorConfig, store: LedgerStore) -> int:
    cmd, action = args.command, getattr(args, "action", None)
    now = _now_ms()
    if config.consortium_policy and (cmd, action) in _REGISTRY_COMMANDS:
        return _consortium_admin(args, config, store, now)
    if cmd == "policy-change":
        return _policy_change(args, config, store)
    if cmd in ("product", "profile"):
        return _products(args, config, store, now)
    if cmd == "document":
        return _documents(args, config, store, now)
    if cmd == "org" and action == "add":
        org = add_organisation(store, args.id, args.name, now)
        print(f"organisation {org.id} added")
    elif cmd == "org" and action == "list":
        for o in store.organisations():
            print(f"{o.id}\t{o.name}")
    elif cmd in ("asset", "read-point") and action == "add":
        p = register_place(store, args.id, args.org, cmd, now, args.name, _attest(config))
        print(f"{p.kind} {p.id} registered for {p.org_id}")
    elif cmd in ("asset", "read-point") and action == "list":
        for p in store.places(args.org):
            if p.kind == cmd:
                print(f"{p.id}\t{p.org_id}\t{p.name}")
    elif cmd == "gateway" and action == "enroll":
        home = args.asset[0] if args.asset else None
        g = enroll_gateway(
            store,
            args.id,
            args.org,
            args.public_key,
            home,
            now,
            [*args.asset, *args.read_point],
            _attest(config),
        )
        _print_enrolled(g)
    elif cmd == "gateway" and action == "revoke":
        at = args.at if args.at is not None else now
        g = revoke_gateway(store, args.id, at, args.reason, now, _attest(config))
        _print_revoked(g, at, now)
    elif cmd == "gateway" and action == "list":
        for g in store.gateways():
            state = "revoked" if g.revoked_at is not None else "active"
            scope = ",".join(sorted(g.places)) or "-"
            print(f"{g.id}\t{g.org_id}\t{g.asset or '-'}\t{scope}\t{g.key_id}\t{state}")
    elif cmd == "token" and action == "create":
        token, row = issue_token(store, args.org, args.role, now, args.label)
        _print_token(token, row)
    elif cmd == "token" and action == "revoke":
        t = store.revoke_token(args.id, now)
        print(f"token {t.id} revoked")
    elif cmd == "checkpoint":
        signer = open_signer(config, store)
        with store.transaction() as tx:
            cp = sign_checkpoint(tx, signer)
        cp = gather_cosignatures(store, signer) or cp  # after the commit, never inside it
        print(cp.note, end="")
        print(f"height {cp.height}, size {cp.size}, final {cp.final}", file=sys.stderr)
    elif cmd == "verify-ledger":
        signer = open_signer(config, store)
        bar: ProgressBar | None = None

        def progress(done: int, total: int, label: str) -> None:
            nonlocal bar
            if args.quiet:
                return
            if bar is None:
                bar = ProgressBar(total)
            bar.advance(1, label)

        try:
            report = verify_ledger(store, signer, progress)
        except LedgerCorrupt as e:
            if bar is not None:
                bar.finish()
            print(f"INCONSISTENT: {e}", file=sys.stderr)
            return EXIT_REFUSED
        if bar is not None:
            bar.finish()
        print(
            f"ledger OK: {report.batches} batches, {report.records} records,"
            f" {report.checkpoints} checkpoints, log size {report.log_size}"
        )
        for f in report.flagged:
            print(
                f"FLAGGED: {f.gw} batch {f.batch_seq} (log leaf {f.leaf_index}, {f.records}"
                f" records) was accepted at {f.accepted_at} ms, after the gateway's compromise"
                f" time {f.compromised_since} ms and before its revocation was recorded: kept"
                " in the append-only log, and flagged in every answer and bundle that uses it",
                file=sys.stderr,
            )
        if report.pending_batches:
            shown = ", ".join(f"{gw} {a}..{b}" for gw, a, b in report.pending_ranges)
            more = " ..." if report.pending_holes > len(report.pending_ranges) else ""
            print(
                f"WARNING: {report.pending_batches} batches in {report.pending_holes} pending"
                f" holes are not stored yet (a gateway may still be draining its backlog;"
                f" every stored link verified): {shown}{more}",
                file=sys.stderr,
            )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    overrides = {} if args.store is None else {"store": args.store}
    try:
        config = load_config(args.config, **overrides)
    except ConfigError as e:
        print(f"coldtrail-anchor: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run(args, config)
    except ConfigError as e:  # e.g. a PostgreSQL store without its driver installed
        print(f"coldtrail-anchor: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, KeyError_, ProofsError, AnchorError) as e:
        print(f"coldtrail-anchor: {e}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
