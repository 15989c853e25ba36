"""Records, canonical JSON, Ed25519 keys and key files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from proofs.canonical import canonical_json
from proofs.errors import FormatError, KeyError_, VerificationError
from proofs.keys import PublicKey, SigningKey
from proofs.keystore import load_signing_key, save_signing_key
from proofs.records import (
    ZERO_HASH,
    ClockEvidence,
    Gap,
    Manifest,
    Reading,
    Scan,
    manifest_from_json,
    new_salt,
    record_from_dict,
    record_from_json,
    sign,
    verify,
)

KEY = SigningKey.from_seed(b"\x01" * 32)
CLK = ClockEvidence(mono_us=123, boot="boot-1", sync=True)


def reading(**over) -> Reading:
    fields = dict(
        gw="truck-07",
        seq=1,
        src="probe-1",
        t=1_763_712_000_000,
        clk=CLK,
        salt=new_salt(b"\x02" * 16),
        q="temperature",
        val=-18.25,
        unit="CEL",
    )
    fields.update(over)
    return Reading(**fields)


def test_canonical_json_is_rfc8785() -> None:
    value = {"b": [1, 2.5, "é"], "a": {"z": None, "y": True}, "c": 1e21}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value) == '{"a":{"y":true,"z":null},"b":[1,2.5,"é"],"c":1e+21}'.encode()
    with pytest.raises(FormatError):
        canonical_json({"x": float("nan")})


def test_sign_verify_round_trip_for_every_record_type() -> None:
    scan = Scan(
        gw="line-4",
        seq=2,
        src="scanner-1",
        t=1,
        clk=CLK,
        salt=new_salt(b"\x03" * 16),
        raw="0109501101530003\x1d10LOT-1",
        sym="]C1",
        gs1={"01": "09501101530003", "10": "LOT-1"},
        step="packing",
        rp="line-4",
    )
    gap = Gap(
        gw="truck-07",
        seq=10,
        src="spool",
        t=1,
        clk=CLK,
        salt=new_salt(b"\x04" * 16),
        reason="evicted",
        lost_from=3,
        lost_to=9,
        count=7,
    )
    for rec in (reading(), scan, gap):
        signed = sign(rec, KEY)
        verify(signed, KEY.public_key)
        again = record_from_json(signed.to_json())
        assert again == signed
        assert again.leaf_hash() == signed.leaf_hash()
        assert json.loads(signed.to_json())["sig"] == signed.sig


def test_any_changed_field_breaks_the_signature() -> None:
    signed = sign(reading(), KEY)
    for change in ({"val": -18.0}, {"seq": 2}, {"t": 5}, {"asset": "truck-08"}, {"unit": "FAH"}):
        tampered = record_from_dict({**signed.to_dict(), **change})
        with pytest.raises(VerificationError):
            verify(tampered, KEY.public_key)
    with pytest.raises(VerificationError):
        verify(signed, SigningKey.generate().public_key)


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        ("not json", "malformed-json"),
        ("[]", "malformed-json"),
        ('{"type": "nope"}', "unknown-type"),
        ('{"type": "reading", "v": 1}', "missing-field"),
        ('{"type": "reading", "v": 2}', "bad-version"),
    ],
)
def test_untrusted_json_gets_a_stable_code(doc: str, code: str) -> None:
    with pytest.raises(FormatError) as e:
        record_from_json(doc)
    assert e.value.code == code


def test_field_validation_messages_name_the_field() -> None:
    good = sign(reading(), KEY).to_dict()
    cases = {
        "seq": -1,
        "val": "hot",
        "unit": "degrees",
        "salt": "zz",
        "gw": "",
        "clk": {"mono_us": 1},
        "t": True,
        "sig": "@@@",
    }
    for field_name, bad in cases.items():
        with pytest.raises(FormatError) as e:
            record_from_dict({**good, field_name: bad})
        assert field_name in e.value.message or field_name == "clk"


def _parse_or_format_error(parse, doc) -> None:
    try:
        rec = parse(doc)
    except FormatError as e:
        assert e.code and e.message  # a stable code and a sentence, nothing else escapes
    else:
        assert isinstance(rec, Reading | Scan | Gap)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_parser_raises_only_format_errors_on_any_json(doc) -> None:
    _parse_or_format_error(record_from_dict, doc)
    extra = doc if isinstance(doc, dict) else {}
    _parse_or_format_error(record_from_dict, {"type": "reading", "v": 1, **extra})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parser_raises_only_format_errors_on_any_bytes(data: bytes) -> None:
    _parse_or_format_error(record_from_json, data)


def test_manifest_chain_and_validation() -> None:
    m = Manifest(
        gw="truck-07",
        batch_seq=1,
        prev=ZERO_HASH,
        first_seq=1,
        last_seq=8,
        count=8,
        root="ab" * 32,
        opened=1,
        closed=2,
        key=KEY.key_id,
    )
    signed = sign(m, KEY)
    verify(signed, KEY.public_key)
    assert manifest_from_json(signed.to_json()) == signed
    assert len(signed.hash_hex()) == 64
    fields = {k: getattr(m, k) for k in Manifest.__dataclass_fields__ if k != "TYPE"}
    for bad in ({"count": 7}, {"prev": "00"}, {"closed": 0, "opened": 5}, {"key": "nothex"}):
        with pytest.raises(FormatError):
            Manifest(**{**fields, **bad})


def test_key_file_is_0600_atomic_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "gateway.key"
    key = SigningKey.generate()
    save_signing_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_signing_key(path).public_key == key.public_key
    assert [p.name for p in path.parent.iterdir()] == ["gateway.key"]  # no temp file left
    with pytest.raises(KeyError_) as e:
        save_signing_key(SigningKey.generate(), path)
    assert e.value.code == "key-exists"
    os.chmod(path, 0o644)
    with pytest.raises(KeyError_) as e:
        load_signing_key(path)
    assert e.value.code == "key-permissions"
    with pytest.raises(KeyError_):
        load_signing_key(tmp_path / "none.key")


def test_private_key_never_in_repr() -> None:
    key = SigningKey.from_seed(b"\x09" * 32)
    assert b"\x09".hex() * 4 not in repr(key)
    assert key.seed().hex() not in repr(key)


def test_public_key_validation() -> None:
    with pytest.raises(KeyError_):
        PublicKey(b"short")
    with pytest.raises(KeyError_):
        PublicKey.from_base64("!!!")
    with pytest.raises(VerificationError):
        KEY.public_key.verify(b"x" * 63, b"m")


def test_unsigned_extra_fields_are_refused() -> None:
    """A field outside the signed body would ride along unsigned: refuse it."""
    signed = sign(reading(), KEY).to_dict()
    for extra in ({"note": "x"}, {"asset": None}, {"clk": {**CLK.to_dict(), "tz": 1}}):
        with pytest.raises(FormatError) as e:
            record_from_dict({**signed, **extra})
        assert e.value.code == "unknown-field"


def test_libsodium_and_openssl_sign_identically() -> None:
    """Ed25519 is deterministic: the fast signing path must equal OpenSSL's."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for seed in (b"\x00" * 32, b"\x07" * 32, bytes(range(32))):
        key = SigningKey.from_seed(seed)
        reference = Ed25519PrivateKey.from_private_bytes(seed)
        for message in (b"", b"m", b"x" * 1000):
            assert key.sign(message) == reference.sign(message)
            key.public_key.verify(key.sign(message), message)
