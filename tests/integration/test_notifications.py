"""Notifications on real processes: an anchor whose lot goes out of range quarantines
it and, within seconds, POSTs an HMAC-signed webhook to the carrier and the owner and
publishes to a real mosquitto; a receiver that fails gets it again with the same
Idempotency-Key; a claim tells the carrier without the claimant's words or contact; a
kill -9 between commit and delivery delays the message, never loses it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from anchor.notify.outbox import verify_signature
from support.anchor_process import start_anchor
from support.procs import free_port, run_mosquitto, stop_process
from support.provenance_fixtures import (
    GTIN,
    LOT,
    ingest_bodies,
    prepare_anchor,
    standard_journey,
)

pytestmark = pytest.mark.integration

SECRETS = {"cool-logistics": b"cool-logistics-webhook-secret-0001",
           "fresh-farms": b"fresh-farms-webhook-secret-000002"}  # fmt: skip


class Receiver:
    """A webhook endpoint per organisation (/hook/<org>) that records what it got and
    answers 503 to the first ``fail_first[org]`` requests."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        self.fail_first: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                org = self.path.rsplit("/", 1)[-1]
                time.sleep(delay_s)  # a slow receiver: sends overlap with other passes
                with outer.lock:
                    outer.got.append((org, dict(self.headers), body))
                    left = outer.fail_first.get(org, 0)
                    outer.fail_first[org] = max(0, left - 1)
                self.send_response(503 if left else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, pred: Any, timeout_s: float = 20.0) -> list[tuple[str, dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                found = [g for g in self.got if pred(g)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"nothing matched within {timeout_s} s; got {len(self.got)}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("notify")
    receiver = Receiver()
    receiver.fail_first["fresh-farms"] = 2
    with run_mosquitto(tmp / "mqtt") as broker:
        messages: list[tuple[str, bytes]] = []
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
        sub.on_message = lambda c, u, m: messages.append((m.topic, m.payload))
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("coldtrail/#", qos=1)
        sub.loop_start()
        journey = standard_journey(excursion=True)
        config, tokens = prepare_anchor(tmp / "data", journey)
        hooks = ""
        for org, secret in SECRETS.items():
            path = tmp / "data" / f"{org}.secret"
            path.write_bytes(secret)
            path.chmod(0o600)
            hooks += (f'[[webhook]]\norg = "{org}"\nurl = "http://127.0.0.1:{receiver.port}'
                      f'/hook/{org}"\nsecret_file = "{org}.secret"\n')  # fmt: skip
        (tmp / "data" / "notify.toml").write_text(
            "retry_base_s = 0.3\nretry_cap_s = 2.0\ntimeout_s = 2.0\n"
            + hooks
            + f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\norgs = ["cool-logistics"]\n'
        )
        config_path = tmp / "anchor.toml"
        config_path.write_text(
            f'[anchor]\ndata_dir = "{config.data_dir}"\nlisten_host = "127.0.0.1"\n'
            "checkpoint_interval_s = 0.5\ndispositions_interval_s = 0.3\n"
            'notify_file = "notify.toml"\n'
            "public_rate_per_s = 100000.0\npublic_burst_requests = 100000\n"
        )
        port = free_port()
        proc = start_anchor(config_path, port, tmp / "anchor.log")
        base = f"http://127.0.0.1:{port}"
        state: dict[str, Any] = {"proc": proc, "base": base, "port": port, "tmp": tmp,
                                 "config_path": config_path, "tokens": tokens,
                                 "receiver": receiver, "messages": messages}  # fmt: skip
        try:
            for org, body in ingest_bodies(journey):
                req = urllib.request.Request(base + "/v1/batches", data=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json",
                             "Authorization": f"Bearer {tokens[org]}"})  # fmt: skip
                with urllib.request.urlopen(req, timeout=20) as resp:
                    assert resp.status == 201
            yield state
        finally:
            stop_process(state["proc"])
            sub.loop_stop()
            sub.disconnect()
            receiver.server.shutdown()
            receiver.server.server_close()


def _disposition(g: tuple[str, dict[str, str], bytes]) -> bool:
    return g[1].get("Coldtrail-Event") == "disposition"


def test_the_carrier_and_the_owner_are_told_of_the_quarantine_signed(setup) -> None:
    receiver = setup["receiver"]
    started = time.monotonic()
    (org, headers, body), *_ = receiver.wait(lambda g: _disposition(g) and g[0] == "cool-logistics")
    assert time.monotonic() - started < 20
    assert verify_signature(SECRETS[org], body, headers["Coldtrail-Signature"], int(time.time()))
    assert not verify_signature(SECRETS["fresh-farms"], body, headers["Coldtrail-Signature"],
                                int(time.time()))  # fmt: skip
    d = json.loads(body)
    assert (d["gtin"], d["lot"], d["disposition"], d["custodian"], d["to"]) == (
        GTIN, LOT, "quarantine", "cool-logistics", "cool-logistics"
    )  # fmt: skip
    assert d["idempotency_key"] == headers["Idempotency-Key"]


def test_a_failing_receiver_gets_it_again_under_the_same_key(setup) -> None:
    receiver = setup["receiver"]
    tries = receiver.wait(lambda g: _disposition(g) and g[0] == "fresh-farms" and len(
        [x for x in receiver.got if _disposition(x) and x[0] == "fresh-farms"]) >= 3)  # fmt: skip
    keys = {h["Idempotency-Key"] for _, h, _ in tries}
    assert len(tries) == 3 and len(keys) == 1  # 503, 503, then 204: one message
    status, raw = _get(setup["base"], "/v1/notifications", setup["tokens"]["fresh-farms:operator"])
    assert status == 200
    rows = [n for n in json.loads(raw)["notifications"] if n["kind"] == "disposition"]
    deadline = time.monotonic() + 10
    while rows[0]["state"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = [n for n in json.loads(_get(setup["base"], "/v1/notifications",
                setup["tokens"]["fresh-farms:operator"])[1])["notifications"]
                if n["kind"] == "disposition"]  # fmt: skip
    assert rows[0]["state"] == "delivered" and rows[0]["org"] == "fresh-farms"
    assert [(a["n"], a["ok"]) for a in rows[0]["log"]] == [(1, False), (2, False), (3, True)]
    assert rows[0]["log"][0]["status"] == "HTTP 503"
    assert _get(setup["base"], "/v1/notifications")[0] == 403


def test_mqtt_subscribers_get_the_carriers_messages(setup) -> None:
    messages = setup["messages"]
    deadline = time.monotonic() + 20
    while not messages and time.monotonic() < deadline:
        time.sleep(0.1)
    topic, payload = messages[0]
    assert topic == "coldtrail/cool-logistics/disposition"
    assert json.loads(payload)["disposition"] == "quarantine"


def _get(base: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"}
                                 if token else {})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _file_claim(base: str, text: str, contact: str) -> dict[str, Any]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in (("text", text), ("contact", contact))
    )
    body += f"--{boundary}--\r\n".encode()  # fmt: skip
    req = urllib.request.Request(base + f"/v1/lots/{GTIN}/{LOT}/claims", data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Accept": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        return dict(json.load(resp))


def test_a_claim_tells_the_carrier_without_the_claimants_words(setup) -> None:
    claim = _file_claim(setup["base"], "secret words: the tub was warm", "ana@example.org")
    (org, headers, body), *_ = setup["receiver"].wait(
        lambda g: g[1].get("Coldtrail-Event") == "claim" and g[0] == "cool-logistics"
    )
    assert verify_signature(SECRETS[org], body, headers["Coldtrail-Signature"], int(time.time()))
    c = json.loads(body)
    assert (c["claim"], c["state"], c["routed_to"]) == (claim["id"], "received", "cool-logistics")
    assert b"secret words" not in body and b"ana@example.org" not in body


def test_a_kill_after_commit_and_before_delivery_delays_but_never_loses(setup) -> None:
    receiver, tokens = setup["receiver"], setup["tokens"]
    receiver.fail_first["cool-logistics"] = 10**6  # every delivery to the carrier fails
    claim = _file_claim(setup["base"], "also warm", "")  # committed with its notification
    cid = claim["id"].encode()
    first = receiver.wait(lambda g: g[0] == "cool-logistics" and cid in g[2])[0]
    os.kill(setup["proc"].pid, signal.SIGKILL)  # it is pending, its sender is gone
    setup["proc"].wait(10)
    receiver.fail_first["cool-logistics"] = 0
    setup["proc"] = start_anchor(setup["config_path"], setup["port"], setup["tmp"] / "anchor.log")
    deadline = time.monotonic() + 30
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        raw = _get(setup["base"], "/v1/notifications", tokens["cool-logistics:operator"])[1]
        row = next(n for n in json.loads(raw)["notifications"]
                   if n["subject"] == claim["id"] and n["channel"] == "webhook")  # fmt: skip
        if row["state"] == "delivered":
            break
        time.sleep(0.3)
    assert row["state"] == "delivered", row
    # The failed attempt is in the log only if the process lived to write it down.
    assert row["log"][-1]["ok"]
    sent = [h["Idempotency-Key"] for o, h, b in receiver.got if o == "cool-logistics" and cid in b]
    assert set(sent) == {first[1]["Idempotency-Key"]} and len(sent) >= 2


def test_two_anchor_processes_on_one_postgresql_ledger_send_each_message_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    from support.anchor_process import start_anchor_on

    journey = standard_journey(excursion=True)
    config, tokens = prepare_anchor(tmp_path / "data", journey, store_url=pg_dsn)
    # Each answer takes two of the other process's polls: only the lease keeps it off.
    receiver = Receiver(delay_s=1.0)
    hooks = ""
    for org, secret in SECRETS.items():
        path = tmp_path / "data" / f"{org}.secret"
        path.write_bytes(secret)
        path.chmod(0o600)
        hooks += (f'[[webhook]]\norg = "{org}"\nurl = "http://127.0.0.1:{receiver.port}'
                  f'/hook/{org}"\nsecret_file = "{org}.secret"\n')  # fmt: skip
    (tmp_path / "data" / "notify.toml").write_text("timeout_s = 5.0\n" + hooks)
    config_path = tmp_path / "anchor.toml"
    config_path.write_text(
        f'[anchor]\ndata_dir = "{config.data_dir}"\nlisten_host = "127.0.0.1"\n'
        'checkpoint_interval_s = 0.5\ndispositions_interval_s = 0.3\nnotify_file = "notify.toml"\n'
    )
    workers = [start_anchor_on(config_path, pg_dsn, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        for i, (org, body) in enumerate(ingest_bodies(journey)):
            req = urllib.request.Request(
                f"http://127.0.0.1:{workers[i % 2][1]}/v1/batches",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json",
                         "Authorization": f"Bearer {tokens[org]}"},
            )  # fmt: skip
            with urllib.request.urlopen(req, timeout=20) as resp:
                assert resp.status in (200, 201)
        claim = _file_claim(f"http://127.0.0.1:{workers[1][1]}", "warm", "")
        for org in ("cool-logistics", "fresh-farms"):
            for kind in ("disposition", "claim"):
                receiver.wait(
                    lambda g, o=org, k=kind: g[0] == o and g[1].get("Coldtrail-Event") == k
                )
        time.sleep(3.0)  # both processes' later passes: nothing is sent again
        with receiver.lock:
            sent = [(o, h["Idempotency-Key"]) for o, h, _ in receiver.got]
        # Each message once (a lot decided "needs review" before its last batch, then
        # "quarantine", is two messages, each sent once).
        assert len(sent) == len(set(sent)) >= 4, sent
        assert any(claim["id"].encode() in b for _, _, b in receiver.got)
    finally:
        for proc, _ in workers:
            stop_process(proc)
        receiver.server.shutdown()
        receiver.server.server_close()
