"""The signed records a gateway produces and the anchor verifies.

Every record is a frozen dataclass. Its *body* is a plain dict (the JSON object
without ``sig``); the signature is Ed25519 over ``canonical_json(body)`` and the
Merkle leaf is ``leaf_hash(canonical_json(body + sig))``. Field names are short
because a gateway writes millions of them; docs/formats.md spells each out.

Parsing untrusted JSON goes through :func:`record_from_json` /
:func:`record_from_dict`, which raise :class:`~proofs.errors.FormatError` with a
sentence naming the bad field and never anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

from .canonical import canonical_json, jcs_number, jcs_string
from .errors import FormatError, VerificationError
from .identifiers import ID_RULE, is_identifier
from .keys import SIGNATURE_SIZE, PublicKey, SigningKey
from .merkle import leaf_hash

__all__ = [
    "BUSINESS_STEPS",
    "FORMAT_VERSION",
    "GAP_REASONS",
    "ZERO_HASH",
    "ClockEvidence",
    "Gap",
    "Manifest",
    "Reading",
    "Record",
    "Scan",
    "manifest_from_dict",
    "manifest_from_json",
    "new_salt",
    "record_from_dict",
    "record_from_json",
    "seal",
    "sign",
    "verify",
]

FORMAT_VERSION = 1
SALT_SIZE = 16
ZERO_HASH = "0" * 64  # ``prev`` of a gateway's first manifest
BUSINESS_STEPS = frozenset(
    {"packing", "loading", "unloading", "receiving", "shipping", "storing", "inspecting"}
)
GAP_REASONS = frozenset(
    {
        "evicted",  # disk budget or free space: the oldest unsent records were dropped
        "bad-frame",  # a serial frame or payload that could not be parsed
        "silent-sensor",  # a sensor that stopped reporting
        "source-down",  # a source (port, broker) was unreachable
        "clock-jump",  # the wall clock moved against the monotonic clock
        "restart",  # the gateway restarted; records in flight may be missing
        "null-value",  # a device sent a quantity without a value (JSON null, "not available")
        "implausible-value",  # a value no sensor of that quantity can measure (plausibility)
        "disk-full",  # the gateway's filesystem was full: records could not be stored
    }
)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_MAX_SAFE_INT = 2**53 - 1
_UNIT = re.compile(r"[A-Z0-9]{2,3}")
_MAX_I53 = 2**53 - 1


def new_salt(random_bytes: bytes) -> str:
    """Hex salt from 16 caller-supplied random bytes (``proofs`` reads no entropy itself)."""
    if len(random_bytes) != SALT_SIZE:
        raise FormatError(f"salt is {SALT_SIZE} bytes", code="bad-salt")
    return random_bytes.hex()


# --- field validation helpers -------------------------------------------------


def _need(d: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in d:
        raise FormatError(f"{where}: field '{name}' is missing", code="missing-field")
    value = d[name]
    if kind is int or kind == (int,):
        if isinstance(value, bool) or not isinstance(value, int):
            raise FormatError(f"{where}: field '{name}' must be an integer", code="bad-field")
        if not -_MAX_I53 <= value <= _MAX_I53:
            raise FormatError(f"{where}: field '{name}' is out of range", code="bad-field")
        return value
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise FormatError(f"{where}: field '{name}' must be {names}", code="bad-field")
    return value


def _opt(d: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if d.get(name) is None:
        return None
    return _need(d, name, kind, where)


# Ids seen valid before: a gateway makes millions of records from a few dozen ids.
_VALID_IDS: set[str] = set()


def _check_id(value: str, name: str, where: str) -> None:
    if value in _VALID_IDS:
        return
    if not is_identifier(value):
        raise FormatError(f"{where}: '{name}' must be {ID_RULE}", code="bad-field")
    if len(_VALID_IDS) >= 4096:
        _VALID_IDS.clear()  # bounded: ids from hostile input cannot grow it
    _VALID_IDS.add(value)


def _check_text(value: str, name: str, where: str) -> None:
    """A string JSON can carry: a lone surrogate (from a "\\ud800" escape in some
    device's JSON) would make the record impossible to canonicalise, so to sign."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise FormatError(f"{where}: '{name}' is not valid Unicode", code="bad-field") from e


def _check_nonneg(value: int, name: str, where: str) -> None:
    if value < 0:
        raise FormatError(f"{where}: '{name}' must not be negative", code="bad-field")


def _b64sig(value: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise FormatError(f"{where}: 'sig' is not base64", code="bad-field") from e
    if len(raw) != SIGNATURE_SIZE:
        raise FormatError(f"{where}: 'sig' must be {SIGNATURE_SIZE} bytes", code="bad-field")
    return raw


def _no_extra(d: dict[str, Any], allowed: Any, where: str) -> None:
    """Refuse fields outside the signed body: what is carried must be what is signed."""
    extra = set(d) - set(allowed) - {"sig"}
    if extra:
        raise FormatError(
            f"{where}: unknown or null field(s) {', '.join(sorted(map(str, extra)))}",
            code="unknown-field",
        )


def _loads(data: bytes | str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise FormatError(f"{where} is not valid JSON: {e}", code="malformed-json") from e
    if not isinstance(obj, dict):
        raise FormatError(f"{where} must be a JSON object", code="malformed-json")
    return obj


# --- clock evidence -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockEvidence:
    """What the gateway knew about time when it made a record.

    ``mono_us`` is CLOCK_BOOTTIME in microseconds since ``boot`` (the
    kernel boot id); ``sync`` says whether the wall clock was NTP-synchronised.
    Two records with the same ``boot`` can be ordered and spaced by ``mono_us``
    whatever the wall clock claimed, which exposes clock jumps.
    """

    mono_us: int  # µs: stays below 2**53 (JSON's exact integers) for 285 years of uptime
    boot: str
    sync: bool

    def __post_init__(self) -> None:
        if self.mono_us < 0:
            raise FormatError("clock: 'mono_us' must not be negative", code="bad-field")
        if not self.boot or len(self.boot) > 64:
            raise FormatError("clock: 'boot' must be 1-64 characters", code="bad-field")

    def to_dict(self) -> dict[str, Any]:
        return {"mono_us": self.mono_us, "boot": self.boot, "sync": self.sync}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ClockEvidence:
        if not isinstance(d, dict):
            raise FormatError(f"{where}: 'clk' must be an object", code="bad-field")
        _no_extra(d, ("mono_us", "boot", "sync"), where + ".clk")
        return cls(
            mono_us=_need(d, "mono_us", int, where + ".clk"),
            boot=_need(d, "boot", str, where + ".clk"),
            sync=_need(d, "sync", bool, where + ".clk"),
        )


# --- records ------------------------------------------------------------------

R = TypeVar("R", bound="Record")


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """Fields every gateway record carries."""

    TYPE: ClassVar[str] = ""
    gw: str
    seq: int
    src: str
    t: int  # wall clock, ms since the Unix epoch, as the gateway read it
    clk: ClockEvidence
    salt: str
    sig: str = ""
    asset: str | None = None  # asset or read point the source belonged to at the time

    def __post_init__(self) -> None:
        where = f"{self.TYPE} record"
        _check_id(self.gw, "gw", where)
        _check_id(self.src, "src", where)
        _check_nonneg(self.seq, "seq", where)
        _check_nonneg(self.t, "t", where)
        if not _HEX32.fullmatch(self.salt):
            raise FormatError(f"{where}: 'salt' must be 32 lowercase hex digits", code="bad-field")
        if self.asset is not None:
            _check_id(self.asset, "asset", where)
        if self.sig:
            _b64sig(self.sig, where)

    def _common(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "type": self.TYPE,
            "gw": self.gw,
            "seq": self.seq,
            "src": self.src,
            "t": self.t,
            "clk": self.clk.to_dict(),
            "salt": self.salt,
        }
        if self.asset is not None:
            d["asset"] = self.asset
        return d

    def body(self) -> dict[str, Any]:
        """The JSON object that is signed (everything but ``sig``)."""
        raise NotImplementedError

    def signing_bytes(self) -> bytes:
        return canonical_json(self.body())

    def _sealing_parts(self, seq: int) -> tuple[bytes, bytes] | None:
        """The body numbered ``seq`` as JCS text split where ``sig`` goes: ``{`` and
        the members before it, the members after it and ``}``. ``None`` leaves it
        to the general path in :func:`seal`; subclasses may format it directly."""
        return None

    def to_dict(self) -> dict[str, Any]:
        if not self.sig:
            raise FormatError("record is not signed yet", code="unsigned")
        d = self.body()
        d["sig"] = self.sig
        return d

    def to_json(self) -> bytes:
        """Canonical bytes of the signed record: what is stored, sent and hashed."""
        return canonical_json(self.to_dict())

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.to_json())

    @staticmethod
    def _common_from(d: dict[str, Any], where: str) -> dict[str, Any]:
        v = _need(d, "v", int, where)
        if v != FORMAT_VERSION:
            raise FormatError(f"{where}: unsupported format version {v}", code="bad-version")
        return {
            "gw": _need(d, "gw", str, where),
            "seq": _need(d, "seq", int, where),
            "src": _need(d, "src", str, where),
            "t": _need(d, "t", int, where),
            "clk": ClockEvidence.from_dict(d.get("clk"), where),
            "salt": _need(d, "salt", str, where),
            "sig": _opt(d, "sig", str, where) or "",
            "asset": _opt(d, "asset", str, where),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading(Record):
    """One measured value of one quantity, e.g. temperature in CEL."""

    TYPE: ClassVar[str] = "reading"
    q: str  # quantity: temperature, humidity, ...
    val: float | int
    unit: str  # UN/ECE Rec 20 code: CEL, P1 (percent), ...
    dev_t: int | None = None  # the device's own timestamp in ms, when it sent one

    def __post_init__(self) -> None:
        Record.__post_init__(self)
        if not self.q or len(self.q) > 64:
            raise FormatError("reading: 'q' must be 1-64 characters", code="bad-field")
        if isinstance(self.val, bool) or not isinstance(self.val, int | float):
            raise FormatError("reading: 'val' must be a number", code="bad-field")
        if isinstance(self.val, float) and not math.isfinite(self.val):
            raise FormatError("reading: 'val' must be finite", code="bad-field")
        if abs(self.val) > _MAX_SAFE_INT:
            # JCS writes an integral 2**53 as digits, which parse back as an integer
            # that no JSON number can carry exactly: signed, it would never verify.
            raise FormatError("reading: 'val' must be within ±(2^53 - 1)", code="bad-field")
        if not _UNIT.fullmatch(self.unit):
            raise FormatError("reading: 'unit' must be a UN/ECE unit code", code="bad-field")

    def body(self) -> dict[str, Any]:
        d = self._common()
        d["q"] = self.q
        d["val"] = self.val
        d["unit"] = self.unit
        if self.dev_t is not None:
            d["dev_t"] = self.dev_t
        return d

    def _sealing_parts(self, seq: int) -> tuple[bytes, bytes] | None:
        # Readings are most of what a gateway signs: formatted field by field in JCS
        # member order, which a property test holds equal to canonical_json.
        numbers = (jcs_number(self.val), jcs_number(self.t), jcs_number(seq))
        mono = jcs_number(self.clk.mono_us)
        dev_t = None if self.dev_t is None else jcs_number(self.dev_t)
        if None in numbers or mono is None or (self.dev_t is not None and dev_t is None):
            return None
        val, t, seq_text = numbers
        es = jcs_string
        head = "".join(
            (
                "{",
                "" if self.asset is None else f'"asset":{es(self.asset)},',
                f'"clk":{{"boot":{es(self.clk.boot)},"mono_us":{mono},',
                f'"sync":{"true" if self.clk.sync else "false"}}},',
                "" if dev_t is None else f'"dev_t":{dev_t},',
                f'"gw":{es(self.gw)},"q":{es(self.q)},"salt":{es(self.salt)},"seq":{seq_text}',
            )
        )
        tail = (
            f'"src":{es(self.src)},"t":{t},"type":"reading","unit":{es(self.unit)},'
            f'"v":{FORMAT_VERSION},"val":{val}}}'
        )
        try:
            return head.encode(), tail.encode()
        except UnicodeEncodeError:  # a lone surrogate: the general path refuses it
            return None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reading:
        w = "reading"
        record = cls(
            **cls._common_from(d, w),
            q=_need(d, "q", str, w),
            val=_need(d, "val", (int, float), w),
            unit=_need(d, "unit", str, w),
            dev_t=_opt(d, "dev_t", int, w),
        )
        _no_extra(d, record.body(), w)
        return record


@dataclass(frozen=True, slots=True, kw_only=True)
class Scan(Record):
    """A barcode read at a read point during a business step."""

    TYPE: ClassVar[str] = "scan"
    raw: str  # the data as read, GS (ASCII 29) kept, symbology id stripped
    sym: str  # AIM symbology identifier such as "]C1", or "" when the scanner sent none
    gs1: dict[str, str] = field(default_factory=dict)  # AI -> value, e.g. {"01": ..., "10": ...}
    step: str = "inspecting"
    rp: str = ""  # read point (GLN, SGLN or a registry name)

    def __post_init__(self) -> None:
        Record.__post_init__(self)
        if len(self.raw) > 4096:
            raise FormatError("scan: 'raw' is longer than 4096 characters", code="bad-field")
        if self.step not in BUSINESS_STEPS:
            raise FormatError(
                f"scan: 'step' must be one of {', '.join(sorted(BUSINESS_STEPS))}", code="bad-field"
            )
        if not isinstance(self.gs1, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.gs1.items()
        ):
            raise FormatError("scan: 'gs1' must map AI strings to value strings", code="bad-field")
        for name, text in (("raw", self.raw), ("sym", self.sym), *self.gs1.items()):
            _check_text(text, name, "scan")
        if self.rp:
            _check_id(self.rp, "rp", "scan")

    def body(self) -> dict[str, Any]:
        d = self._common()
        d["raw"] = self.raw
        d["sym"] = self.sym
        d["gs1"] = dict(self.gs1)
        d["step"] = self.step
        d["rp"] = self.rp
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scan:
        w = "scan"
        record = cls(
            **cls._common_from(d, w),
            raw=_need(d, "raw", str, w),
            sym=_need(d, "sym", str, w),
            gs1=_need(d, "gs1", dict, w),
            step=_need(d, "step", str, w),
            rp=_need(d, "rp", str, w),
        )
        _no_extra(d, record.body(), w)
        return record


@dataclass(frozen=True, slots=True, kw_only=True)
class Gap(Record):
    """A signed statement that data was lost or never arrived. Loss is never silent."""

    TYPE: ClassVar[str] = "gap"
    reason: str
    detail: str = ""
    lost_from: int | None = None  # first seq of records evicted (reason 'evicted')
    lost_to: int | None = None  # last seq of records evicted, inclusive
    count: int = 1  # how many readings, frames or records the gap covers

    def __post_init__(self) -> None:
        Record.__post_init__(self)
        if self.reason not in GAP_REASONS:
            raise FormatError(
                f"gap: 'reason' must be one of {', '.join(sorted(GAP_REASONS))}", code="bad-field"
            )
        if len(self.detail) > 1024:
            raise FormatError("gap: 'detail' is longer than 1024 characters", code="bad-field")
        _check_text(self.detail, "detail", "gap")
        if (self.lost_from is None) != (self.lost_to is None):
            raise FormatError("gap: 'lost_from' and 'lost_to' go together", code="bad-field")
        if (
            self.lost_from is not None
            and self.lost_to is not None
            and not 0 <= self.lost_from <= self.lost_to < self.seq
        ):
            raise FormatError("gap: lost range must precede the gap record", code="bad-field")
        _check_nonneg(self.count, "count", "gap")

    def body(self) -> dict[str, Any]:
        d = self._common()
        d["reason"] = self.reason
        d["detail"] = self.detail
        d["count"] = self.count
        if self.lost_from is not None:
            d["lost_from"] = self.lost_from
            d["lost_to"] = self.lost_to
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Gap:
        w = "gap"
        record = cls(
            **cls._common_from(d, w),
            reason=_need(d, "reason", str, w),
            detail=_opt(d, "detail", str, w) or "",
            lost_from=_opt(d, "lost_from", int, w),
            lost_to=_opt(d, "lost_to", int, w),
            count=_need(d, "count", int, w),
        )
        _no_extra(d, record.body(), w)
        return record


_TYPES: dict[str, type[Reading] | type[Scan] | type[Gap]] = {
    "reading": Reading,
    "scan": Scan,
    "gap": Gap,
}


def record_from_dict(d: Any) -> Reading | Scan | Gap:
    if not isinstance(d, dict):
        raise FormatError("a record must be a JSON object", code="malformed-json")
    kind = d.get("type")
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise FormatError(f"unknown record type {kind!r}", code="unknown-type")
    try:
        return cls.from_dict(d)
    except (TypeError, ValueError) as e:  # unexpected shapes inside nested values
        raise FormatError(f"{kind} record is malformed: {e}", code="bad-field") from e


def record_from_json(data: bytes | str) -> Reading | Scan | Gap:
    return record_from_dict(_loads(data, "record"))


# --- batch manifest -----------------------------------------------------------


_MANIFEST_FIELDS = frozenset(
    {"v", "type", "gw", "batch_seq", "prev", "first_seq", "last_seq", "count", "root"}
    | {"opened", "closed", "key"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A gateway's signed statement: records first_seq..last_seq have Merkle root ``root``.

    ``prev`` is the hex SHA-256 of the previous manifest's signed JSON, so a
    gateway's batches form a hash chain; the first manifest has ``ZERO_HASH``.
    """

    TYPE: ClassVar[str] = "manifest"
    gw: str
    batch_seq: int
    prev: str
    first_seq: int
    last_seq: int
    count: int
    root: str  # hex RFC 6962 root over the records' leaf hashes, in seq order
    opened: int  # ms
    closed: int  # ms
    key: str  # key id of the signing key, so rotated keys can be told apart
    sig: str = ""

    def __post_init__(self) -> None:
        w = "manifest"
        _check_id(self.gw, "gw", w)
        for name in ("batch_seq", "first_seq", "last_seq", "count", "opened", "closed"):
            _check_nonneg(getattr(self, name), name, w)
        if not _HEX64.fullmatch(self.prev):
            raise FormatError("manifest: 'prev' must be 64 lowercase hex digits", code="bad-field")
        if not _HEX64.fullmatch(self.root):
            raise FormatError("manifest: 'root' must be 64 lowercase hex digits", code="bad-field")
        if self.count < 1 or self.last_seq - self.first_seq + 1 != self.count:
            raise FormatError(
                "manifest: 'count' must equal last_seq - first_seq + 1 and be at least 1",
                code="bad-field",
            )
        if self.closed < self.opened:
            raise FormatError("manifest: 'closed' is before 'opened'", code="bad-field")
        if not re.fullmatch(r"[0-9a-f]{16}", self.key):
            raise FormatError("manifest: 'key' must be a 16-hex-digit key id", code="bad-field")
        if self.sig:
            _b64sig(self.sig, w)

    def body(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "type": self.TYPE,
            "gw": self.gw,
            "batch_seq": self.batch_seq,
            "prev": self.prev,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "count": self.count,
            "root": self.root,
            "opened": self.opened,
            "closed": self.closed,
            "key": self.key,
        }

    def signing_bytes(self) -> bytes:
        return canonical_json(self.body())

    def to_dict(self) -> dict[str, Any]:
        if not self.sig:
            raise FormatError("manifest is not signed yet", code="unsigned")
        d = self.body()
        d["sig"] = self.sig
        return d

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    def hash_hex(self) -> str:
        """What the next manifest's ``prev`` must be."""
        return hashlib.sha256(self.to_json()).hexdigest()

    def leaf_hash(self) -> bytes:
        """The manifest's leaf in the anchor's log."""
        return leaf_hash(self.to_json())

    @classmethod
    def from_dict(cls, d: Any) -> Manifest:
        w = "manifest"
        if not isinstance(d, dict):
            raise FormatError("a manifest must be a JSON object", code="malformed-json")
        if d.get("type") != cls.TYPE:
            raise FormatError("manifest: 'type' must be 'manifest'", code="unknown-type")
        v = _need(d, "v", int, w)
        if v != FORMAT_VERSION:
            raise FormatError(f"manifest: unsupported format version {v}", code="bad-version")
        _no_extra(d, _MANIFEST_FIELDS, w)
        return cls(
            gw=_need(d, "gw", str, w),
            batch_seq=_need(d, "batch_seq", int, w),
            prev=_need(d, "prev", str, w),
            first_seq=_need(d, "first_seq", int, w),
            last_seq=_need(d, "last_seq", int, w),
            count=_need(d, "count", int, w),
            root=_need(d, "root", str, w),
            opened=_need(d, "opened", int, w),
            closed=_need(d, "closed", int, w),
            key=_need(d, "key", str, w),
            sig=_opt(d, "sig", str, w) or "",
        )


def manifest_from_dict(d: Any) -> Manifest:
    return Manifest.from_dict(d)


def manifest_from_json(data: bytes | str) -> Manifest:
    return Manifest.from_dict(_loads(data, "manifest"))


# --- signing ------------------------------------------------------------------

S = TypeVar("S", Reading, Scan, Gap, Manifest)


def sign(item: S, key: SigningKey) -> S:
    """Return ``item`` with ``sig`` set: Ed25519 over the JCS bytes of its body."""
    signature = key.sign(item.signing_bytes())
    return replace(item, sig=base64.b64encode(signature).decode("ascii"))


def seal(item: Reading | Scan | Gap, seq: int, key: SigningKey) -> bytes:
    """The canonical bytes of ``item`` numbered ``seq`` and signed, as stored and sent.

    Equal to ``sign(replace(item, seq=seq), key).to_json()`` (a property test holds
    them to it) without building the two copies or canonicalising twice: the gateway
    seals every record it stores, and this is its hot path. JCS writes an object's
    members in key order, so the members before and after ``sig`` are canonicalised
    apart and the signature is put between them.
    """
    _check_nonneg(seq, "seq", f"{item.TYPE} record")
    parts = item._sealing_parts(seq)
    if parts is None:
        body = item.body()
        body["seq"] = seq
        before = canonical_json({k: v for k, v in body.items() if k < "sig"})
        after = canonical_json({k: v for k, v in body.items() if k > "sig"})
        parts = before[:-1], after[1:]
    head, tail = parts
    signature = base64.b64encode(key.sign(head + b"," + tail))
    return b"".join((head, b',"sig":"', signature, b'",', tail))


def verify(item: Reading | Scan | Gap | Manifest, public_key: PublicKey) -> None:
    """Return ``None`` if ``item`` carries a valid signature by ``public_key``; raise otherwise."""
    if not item.sig:
        raise VerificationError(f"{item.TYPE} is not signed", code="unsigned")
    where = f"{item.TYPE} {item.gw}"
    public_key.verify(_b64sig(item.sig, where), item.signing_bytes())
