"""The notification rules: signatures a receiver checks, the retry schedule, keys that
make a change told once, and subscriptions refused when their secret is not kept."""

from __future__ import annotations

import hashlib
import hmac
import random
from pathlib import Path

import pytest

from anchor.errors import ConfigError
from anchor.notify.config import NotifyConfig, load_notify
from anchor.notify.outbox import backoff_ms, idempotency_key, signature_header, verify_signature

SECRET = b"0123456789abcdef-webhook-secret"


def test_the_signature_is_hmac_sha256_over_the_time_and_the_body() -> None:
    body = b'{"event":"disposition"}'
    header = signature_header(SECRET, body, 1_800_000_000)
    mac = hmac.new(SECRET, b"1800000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1800000000,v1={mac}"
    assert verify_signature(SECRET, body, header, 1_800_000_100)
    assert not verify_signature(SECRET, body + b" ", header, 1_800_000_100)  # body changed
    assert not verify_signature(b"another secret, 16+ bytes", body, header, 1_800_000_100)
    assert not verify_signature(SECRET, body, header, 1_800_000_301)  # replayed too late
    assert not verify_signature(SECRET, body, "t=x,v1=00", 1_800_000_000)
    assert not verify_signature(SECRET, body, "", 1_800_000_000)


def test_retries_double_from_the_base_with_at_most_a_quarter_more_and_a_cap() -> None:
    config = NotifyConfig(retry_base_s=2.0, retry_cap_s=60.0)
    rng = random.Random(3)
    waits = [backoff_ms(k, config, rng) for k in range(1, 9)]
    for k, wait in enumerate(waits, start=1):
        base = min(2.0 * 2 ** (k - 1), 60.0) * 1000
        assert base <= wait <= base * 1.25, (k, wait)
    assert waits[-1] <= 75_000  # capped at 60 s (+ jitter)


def test_one_change_to_one_org_on_one_channel_has_one_key() -> None:
    key = idempotency_key("disposition", "09506000134352/L1", 2, "polar", "webhook")
    assert key == idempotency_key("disposition", "09506000134352/L1", 2, "polar", "webhook")
    others = {
        idempotency_key("disposition", "09506000134352/L1", 3, "polar", "webhook"),
        idempotency_key("disposition", "09506000134352/L1", 2, "acme", "webhook"),
        idempotency_key("disposition", "09506000134352/L1", 2, "polar", "mqtt"),
        idempotency_key("claim", "09506000134352/L1", 2, "polar", "webhook"),
    }
    assert key not in others and len(others) == 4 and len(key) == 32


def _write(tmp_path: Path, text: str, secret_mode: int = 0o600) -> Path:
    secret = tmp_path / "hook.secret"
    secret.write_bytes(SECRET)
    secret.chmod(secret_mode)
    path = tmp_path / "notify.toml"
    path.write_text(text)
    return path


def test_subscriptions_are_read_with_their_secrets(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[webhook]]\norg = "polar"\nurl = "https://h.example/x"\n'
                  'secret_file = "hook.secret"\n[mqtt]\nhost = "127.0.0.1"\nport = 1884\n'
                  'orgs = ["polar", "acme"]\n')  # fmt: skip
    config = load_notify(path, tmp_path)
    assert config.channels("polar") == ["webhook", "mqtt"]
    assert config.channels("acme") == ["mqtt"] and config.channels("zeta") == []
    hook = config.webhook("polar")
    assert hook is not None and hook.secret == SECRET and SECRET.decode() not in repr(hook)
    assert load_notify(None, tmp_path).channels("polar") == []


@pytest.mark.parametrize(
    ("text", "mode", "needle"),
    [
        ('[[webhook]]\norg = "p"\nurl = "https://h/x"\nsecret_file = "hook.secret"\n', 0o644,
         "readable by others"),
        ('[[webhook]]\norg = "p"\nurl = "ftp://h/x"\nsecret_file = "hook.secret"\n', 0o600,
         "http(s)"),
        ('[[webhook]]\norg = "p"\nurl = "https://h/x"\nsecret_file = "nope"\n', 0o600,
         "cannot read"),
        ('[[webhook]]\norg = "p"\n', 0o600, "give org, url and secret_file"),
        ("colour = 1\n", 0o600, "unknown keys"),
        ("[mqtt]\nport = 1\n", 0o600, "give host"),
        ("this is not toml", 0o600, "not valid TOML"),
    ],
)  # fmt: skip
def test_bad_subscriptions_stop_the_start_with_their_reason(
    tmp_path: Path, text: str, mode: int, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_notify(_write(tmp_path, text, mode), tmp_path)
