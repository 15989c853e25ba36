"""MQTT payload adapters (pure): topic + payload bytes -> observations.

One adapter per device family. Routes (:class:`TopicRoute`) say which topics
go to which adapter and which registry sensor id they carry; the core builds
them from TOML (``[[sources.mqtt.routes]]``, see docs/mqtt-sources.md). No
adapter raises on any payload: malformed input becomes a
:class:`~gateway.observations.BadInput` with a stable code.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from gateway.observations import NULL_VALUE, BadInput, Measurement, Observation
from proofs.identifiers import is_identifier

from .backoff import truncate_for_log
from .device_clock import iso_to_ms, plausible_device_ms, seconds_to_ms
from .ruuvi_raw import RUUVI_RAW_CODES, RuuviRawError, decode_advertisement

__all__ = [
    "ADAPTERS",
    "MQTT_BAD_CODES",
    "AdapterContext",
    "TopicRoute",
    "adapt",
    "match_topic",
]

MAX_PAYLOAD_BYTES = 64 * 1024  # any sensor message is far smaller; bigger is hostile
MQTT_BAD_CODES = (
    frozenset(
        {
            "payload-too-large",
            "not-utf8",
            "not-json",
            "bad-shape",
            "bad-value",
            "bad-unit",
            "bad-sensor-id",
            NULL_VALUE,
        }
    )
    | RUUVI_RAW_CODES
)
UNITS = frozenset({"CEL", "FAH"})
_PLACEHOLDER = re.compile(r"\{(\d)\}")


@dataclass(frozen=True, slots=True)
class TopicRoute:
    """Topics matching ``pattern`` go through ``adapter`` and are credited to ``sensor``.

    ``sensor`` is a registry id, optionally with ``{1}``, ``{2}``... standing for
    the topic levels matched by the first, second... ``+`` wildcard, e.g.
    ``pattern="zigbee2mqtt/+"``, ``sensor="z2m-{1}"``. ``unit`` overrides the
    temperature unit where the payload does not say it (Shelly Gen1 reports in
    whatever unit the device was set to). ``device_zone`` is the IANA zone a
    device's local clock runs in (Tasmota); without it, local times are dropped.
    ``quantities`` keeps only the named quantities (default: all the adapter knows).
    """

    pattern: str
    adapter: str
    sensor: str
    unit: str | None = None
    device_zone: str | None = None
    quantities: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.adapter not in ADAPTERS:
            raise ValueError(
                f"route {self.pattern!r}: adapter must be one of {', '.join(sorted(ADAPTERS))}"
            )
        levels = self.pattern.split("/")
        if not self.pattern or any(
            ("+" in lv and lv != "+") or ("#" in lv and lv != "#") for lv in levels
        ):
            raise ValueError(f"route {self.pattern!r}: not a valid MQTT topic filter")
        if "#" in levels[:-1]:
            raise ValueError(f"route {self.pattern!r}: '#' must be the last level")
        wildcards = levels.count("+")
        for ref in _PLACEHOLDER.findall(self.sensor):
            if not 1 <= int(ref) <= wildcards:
                raise ValueError(f"route {self.pattern!r}: sensor refers to missing '+{ref}'")
        if not _PLACEHOLDER.search(self.sensor) and not is_identifier(self.sensor):
            raise ValueError(f"route {self.pattern!r}: sensor {self.sensor!r} is not a valid id")
        if self.unit is not None and self.unit not in UNITS:
            raise ValueError(f"route {self.pattern!r}: unit must be CEL or FAH")
        if self.quantities is not None:
            object.__setattr__(self, "quantities", frozenset(self.quantities))

    def sensor_for(self, topic: str) -> str | None:
        """The sensor id for ``topic``, or ``None`` when the topic does not match."""
        captures = match_topic(self.pattern, topic)
        if captures is None:
            return None
        sensor = _PLACEHOLDER.sub(lambda m: captures[int(m.group(1)) - 1], self.sensor)
        return sensor if is_identifier(sensor) else ""


def match_topic(pattern: str, topic: str) -> list[str] | None:
    """MQTT filter matching; returns the levels matched by ``+`` wildcards."""
    p_levels, t_levels = pattern.split("/"), topic.split("/")
    captures: list[str] = []
    for i, p in enumerate(p_levels):
        if p == "#":
            # '#' does not match '$SYS'-style topics at the first level.
            return captures if not (i == 0 and topic.startswith("$")) else None
        if i >= len(t_levels):
            return None
        if p == "+":
            if i == 0 and t_levels[0].startswith("$"):
                return None
            captures.append(t_levels[i])
        elif p != t_levels[i]:
            return None
    return captures if len(p_levels) == len(t_levels) else None


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What an adapter knows besides the payload."""

    topic: str
    sensor: str
    route: TopicRoute
    source: str  # the MQTT source's name: 'src' for input that cannot be attributed


Adapter = Callable[[AdapterContext, bytes], list[Observation]]


def adapt(
    routes: Iterable[TopicRoute], source: str, topic: str, payload: bytes
) -> list[Observation]:
    """Route one message and adapt it; the first matching route wins. A message
    on a subscribed topic that no route maps is a ``bad-sensor-id`` BadInput."""
    for route in routes:
        sensor = route.sensor_for(topic)
        if sensor is None:
            continue
        if not sensor:
            return [
                BadInput(
                    source, "bad-sensor-id", f"topic {truncate_for_log(topic)} maps to no valid id"
                )
            ]
        ctx = AdapterContext(topic, sensor, route, source)
        if len(payload) > MAX_PAYLOAD_BYTES:
            return [
                BadInput(
                    sensor,
                    "payload-too-large",
                    f"{len(payload)} bytes on {truncate_for_log(topic)}",
                )
            ]
        try:
            out = ADAPTERS[route.adapter](ctx, payload)
        except (
            ValueError,
            TypeError,
            KeyError,
            AttributeError,
            RecursionError,
            OverflowError,
        ) as e:
            # Adapters check shapes as they go; this is the backstop for a shape
            # nobody anticipated, so hostile input can never crash the source.
            return [BadInput(sensor, "bad-shape", f"{route.adapter}: {type(e).__name__}")]
        if route.quantities is not None:
            out = [o for o in out if not isinstance(o, Measurement) or o.q in route.quantities]
        return out
    return [BadInput(source, "bad-sensor-id", f"no route for topic {truncate_for_log(topic)}")]


# --- shared helpers -------------------------------------------------------------


def _json_object(ctx: AdapterContext, payload: bytes) -> dict[str, Any] | BadInput:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return BadInput(ctx.sensor, "not-utf8", f"payload on {truncate_for_log(ctx.topic)}")
    try:
        obj = _decode_json(text)
    except (ValueError, RecursionError):
        return BadInput(ctx.sensor, "not-json", f"payload {truncate_for_log(text)}")
    if not isinstance(obj, dict):
        return BadInput(ctx.sensor, "bad-shape", f"{ctx.route.adapter}: payload is not an object")
    return obj


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


# One decoder for every payload: json.loads builds a new one per call when given options.
_decode_json = json.JSONDecoder(parse_constant=_reject_constant).decode


def _number(value: object) -> float | int | None:
    # Exact types, as JSON produces them: bool (an int subclass) is not a number here.
    if value.__class__ is float:
        f = cast(float, value)
        return f if math.isfinite(f) else None
    if value.__class__ is int:
        i = cast(int, value)
        return i if abs(i) <= 2**53 else None
    return None


def _wanted(ctx: AdapterContext, q: str) -> bool:
    return ctx.route.quantities is None or q in ctx.route.quantities


def _measure(
    out: list[Observation],
    ctx: AdapterContext,
    src: str,
    q: str,
    raw: object,
    unit: str,
    dev_t: int | None,
    dev_seq: int | None = None,
) -> None:
    """Append the reading of ``q``; a ``None`` value the route wants is appended as a
    ``null-value`` BadInput (the device said it has no value: a loss, recorded)."""
    if raw is None:
        if _wanted(ctx, q):
            out.append(_null(src, q, "is null"))
        return
    value = _number(raw)
    if value is None:
        out.append(BadInput(ctx.sensor, "bad-value", f"{q} is not a finite number"))
        return
    out.append(Measurement(src, q, value, unit, dev_t, dev_seq))


def _null(src: str, q: str, why: str) -> BadInput:
    return BadInput(src, NULL_VALUE, f"{q} {why}", reason=NULL_VALUE)


def _temperature_unit(ctx: AdapterContext, reported: object = None) -> str | BadInput:
    """The payload's own unit (``"F"``, ``"C"``...) when it names one, else the route's,
    else CEL. A unit the payload names that is not a temperature unit is refused:
    recording it as Celsius would be silently wrong."""
    if reported is None:
        return ctx.route.unit or "CEL"
    r = reported.strip().upper() if isinstance(reported, str) else None
    if r in ("F", "FAH", "°F"):
        return "FAH"
    if r in ("C", "CEL", "°C"):
        return "CEL"
    return BadInput(
        ctx.sensor,
        "bad-unit",
        f"{ctx.route.adapter}: temperature unit {truncate_for_log(str(reported), 16)!r}"
        " is neither C nor F",
    )


def _seq(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        return None
    return value


def _epoch_or_iso(value: object, zone: str | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        # Zigbee2MQTT 'last_seen' as epoch is in ms; anything that small is seconds.
        return plausible_device_ms(value) if value > 10**11 else seconds_to_ms(value)
    return iso_to_ms(value, zone)


# --- adapters -------------------------------------------------------------------

_Z2M_QUANTITIES: Mapping[str, str] = {
    "temperature": "CEL",
    "humidity": "P1",
    "battery": "P1",
    "linkquality": "C62",  # LQI 0-255, a plain number
}


def zigbee2mqtt(ctx: AdapterContext, payload: bytes) -> list[Observation]:
    """``zigbee2mqtt/<name>``: ``{"temperature":4.2,"humidity":55,"battery":97,
    "linkquality":120,"last_seen":"2026-11-21T10:00:00+01:00"}``."""
    obj = _json_object(ctx, payload)
    if isinstance(obj, BadInput):
        return [obj]
    dev_t = _epoch_or_iso(obj.get("last_seen"), ctx.route.device_zone)
    out: list[Observation] = []
    wanted = ctx.route.quantities
    for q, unit in _Z2M_QUANTITIES.items():
        if wanted is not None and q not in wanted:
            continue  # dropped by the route anyway: not worth a Measurement
        if q in obj:
            if q == "temperature":
                unit = ctx.route.unit or "CEL"
            _measure(out, ctx, ctx.sensor, q, obj[q], unit, dev_t)
    return out


_RUUVI_QUANTITIES: Mapping[str, tuple[str, str]] = {
    "temperature": ("temperature", "CEL"),
    "humidity": ("humidity", "P1"),
    "pressure": ("pressure", "PAL"),
    "voltage": ("voltage", "VLT"),
}


def ruuvi(ctx: AdapterContext, payload: bytes) -> list[Observation]:
    """Ruuvi Gateway on ``ruuvi/<gw>/<tag>``: its default raw JSON (``"data"``: the
    BLE advertisement in hex, decoded here; data format 5) or its decoded JSON
    (``"temperature"``...). ``ts`` is epoch seconds (a string in some firmware);
    the measurement sequence number becomes dev_seq."""
    obj = _json_object(ctx, payload)
    if isinstance(obj, BadInput):
        return [obj]
    dev_t = seconds_to_ms(obj.get("ts"))
    if "temperature" not in obj and "data" in obj:
        return _ruuvi_raw(ctx, obj["data"], dev_t)
    dev_seq = _seq(obj.get("measurementSequenceNumber"))
    out: list[Observation] = []
    for key, (q, unit) in _RUUVI_QUANTITIES.items():
        if key in obj:
            _measure(out, ctx, ctx.sensor, q, obj[key], unit, dev_t, dev_seq)
    return out


def _ruuvi_raw(ctx: AdapterContext, data: object, dev_t: int | None) -> list[Observation]:
    if not isinstance(data, str):
        return [BadInput(ctx.sensor, "bad-shape", "ruuvi: 'data' is not a hex string")]
    try:
        df5 = decode_advertisement(data)
    except RuuviRawError as e:
        return [BadInput(ctx.sensor, e.code, f"ruuvi: {e.message}")]
    values: dict[str, tuple[float | int | None, str]] = {
        "temperature": (df5.temperature_c, "CEL"),
        "humidity": (df5.humidity_pct, "P1"),
        "pressure": (df5.pressure_pa, "PAL"),
        "voltage": (None if df5.battery_mv is None else df5.battery_mv / 1000, "VLT"),
    }
    out: list[Observation] = []
    for q, (value, unit) in values.items():
        if value is None:
            if _wanted(ctx, q):
                out.append(_null(ctx.sensor, q, "is 'not available' in the DF5 payload"))
        else:
            out.append(Measurement(ctx.sensor, q, value, unit, dev_t, df5.sequence))
    return out


_SHELLY_GEN1: Mapping[str, tuple[str, str | None]] = {
    "temperature": ("temperature", None),  # unit from the route
    "humidity": ("humidity", "P1"),
    "battery": ("battery", "P1"),
}


def shelly_gen1(ctx: AdapterContext, payload: bytes) -> list[Observation]:
    """``shellies/<id>/sensor/<quantity>`` with a bare number as payload."""
    leaf = ctx.topic.rsplit("/", 1)[-1]
    if leaf not in _SHELLY_GEN1:
        return []  # other Shelly topics (act_reasons, error, ...) are not readings
    q, unit = _SHELLY_GEN1[leaf]
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return [BadInput(ctx.sensor, "not-utf8", f"shelly {leaf}")]
    # ASCII digits only: \d alone would also take fullwidth and other Unicode digits.
    if not re.fullmatch(r"-?\d{1,6}(\.\d{1,6})?", text, re.ASCII):
        return [BadInput(ctx.sensor, "bad-value", f"shelly {leaf}: {truncate_for_log(text, 16)!r}")]
    value = float(text) if "." in text else int(text)
    return [Measurement(ctx.sensor, q, value, unit or ctx.route.unit or "CEL", None)]


def shelly_gen2(ctx: AdapterContext, payload: bytes) -> list[Observation]:
    """Gen2+ RPC notifications on ``<id>/events/rpc``: ``NotifyFullStatus`` and
    ``NotifyStatus`` with ``temperature:N`` (tC/tF), ``humidity:N`` (rh) and
    ``devicepower:N`` (battery.percent) components; ``params.ts`` is epoch s."""
    obj = _json_object(ctx, payload)
    if isinstance(obj, BadInput):
        return [obj]
    method = obj.get("method")
    if method not in ("NotifyFullStatus", "NotifyStatus"):
        return []  # NotifyEvent and responses carry no readings
    params = obj.get("params")
    if not isinstance(params, dict):
        return [BadInput(ctx.sensor, "bad-shape", "shelly-gen2: 'params' is not an object")]
    dev_t = seconds_to_ms(params.get("ts"))
    out: list[Observation] = []
    for key, comp in params.items():
        if not isinstance(key, str) or ":" not in key or not isinstance(comp, dict):
            continue
        kind, _, cid = key.partition(":")
        src = ctx.sensor if cid == "0" else f"{ctx.sensor}.{cid}"
        if not is_identifier(src):
            out.append(BadInput(ctx.sensor, "bad-sensor-id", "shelly-gen2: bad component id"))
            continue
        # A probe that fails to read (an unplugged DS18B20 on the add-on) reports
        # "tC": null; _measure turns that into a null-value gap.
        if kind == "temperature":
            if ctx.route.unit == "FAH" and "tF" in comp:
                _measure(out, ctx, src, "temperature", comp["tF"], "FAH", dev_t)
            elif "tC" in comp:
                _measure(out, ctx, src, "temperature", comp["tC"], "CEL", dev_t)
        elif kind == "humidity" and "rh" in comp:
            _measure(out, ctx, src, "humidity", comp["rh"], "P1", dev_t)
        elif (
            kind == "devicepower"
            and isinstance(comp.get("battery"), dict)
            and "percent" in comp["battery"]
        ):
            _measure(out, ctx, src, "battery", comp["battery"]["percent"], "P1", dev_t)
    return out


_TASMOTA_QUANTITIES: Mapping[str, str] = {"Temperature": "temperature", "Humidity": "humidity"}


def tasmota(ctx: AdapterContext, payload: bytes) -> list[Observation]:
    """``tele/<dev>/SENSOR``: ``{"Time":"2026-11-21T10:00:00","DS18B20":
    {"Temperature":4.2},"TempUnit":"C"}``. ``Time`` is the device's local time
    without an offset; it is kept only when the route names the device's zone.
    One sensor object -> the route's sensor id; several -> ``<id>.<object>``."""
    obj = _json_object(ctx, payload)
    if isinstance(obj, BadInput):
        return [obj]
    dev_t = iso_to_ms(obj.get("Time"), ctx.route.device_zone)
    temp_unit = _temperature_unit(ctx, obj.get("TempUnit"))
    if isinstance(temp_unit, BadInput):
        return [temp_unit]
    sensors = {
        k: v
        for k, v in obj.items()
        if isinstance(v, dict) and any(q in v for q in _TASMOTA_QUANTITIES)
    }
    out: list[Observation] = []
    for name, values in sensors.items():
        src = ctx.sensor if len(sensors) == 1 else f"{ctx.sensor}.{name}"
        if not is_identifier(src):
            out.append(BadInput(ctx.sensor, "bad-sensor-id", "tasmota: bad sensor object name"))
            continue
        for key, q in _TASMOTA_QUANTITIES.items():
            if key in values:
                unit = temp_unit if q == "temperature" else "P1"
                _measure(out, ctx, src, q, values[key], unit, dev_t)
    return out


_PLAIN_UNITS: Mapping[str, str] = {"temperature": "CEL", "humidity": "P1", "battery": "P1"}


def plain_json(ctx: AdapterContext, payload: bytes) -> list[Observation]:
    """Generic JSON: ``{"temperature":4.2,"humidity":55,"unit":"C","t":<epoch ms
    or ISO 8601 with offset>,"seq":12}``, or one value as ``{"q":..,"val":..,"unit":..}``."""
    obj = _json_object(ctx, payload)
    if isinstance(obj, BadInput):
        return [obj]
    t = obj.get("t", obj.get("time"))
    dev_t = (
        plausible_device_ms(t)
        if isinstance(t, int) and not isinstance(t, bool)
        else iso_to_ms(t, ctx.route.device_zone)
    )
    seq = _seq(obj.get("seq"))
    if "q" in obj:
        q, unit = obj.get("q"), obj.get("unit")
        if not isinstance(q, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", q):
            return [BadInput(ctx.sensor, "bad-shape", "json: 'q' must be a quantity name")]
        if not isinstance(unit, str) or not re.fullmatch(r"[A-Z0-9]{2,3}", unit):
            return [BadInput(ctx.sensor, "bad-shape", "json: 'unit' must be a UN/ECE code")]
        if "val" not in obj:
            return [BadInput(ctx.sensor, "bad-shape", "json: 'q' without 'val'")]
        out: list[Observation] = []
        _measure(out, ctx, ctx.sensor, q, obj["val"], unit, dev_t, seq)
        return out
    temp_unit = _temperature_unit(ctx, obj.get("unit"))
    if isinstance(temp_unit, BadInput):
        return [temp_unit]
    out = []
    for q, unit in _PLAIN_UNITS.items():
        if q in obj:
            unit = temp_unit if q == "temperature" else unit
            _measure(out, ctx, ctx.sensor, q, obj[q], unit, dev_t, seq)
    if not out:
        return [BadInput(ctx.sensor, "bad-shape", "json: no known quantity in payload")]
    return out


ADAPTERS: Mapping[str, Adapter] = {
    "zigbee2mqtt": zigbee2mqtt,
    "ruuvi": ruuvi,
    "shelly-gen1": shelly_gen1,
    "shelly-gen2": shelly_gen2,
    "tasmota": tasmota,
    "json": plain_json,
}
