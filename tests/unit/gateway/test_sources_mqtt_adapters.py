"""MQTT payload adapters and topic routing, with payloads as devices send them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.payloads import FORMATS, Sample
from gateway.observations import BadInput, Measurement
from gateway.sources.mqtt_adapters import ADAPTERS, MQTT_BAD_CODES, TopicRoute, adapt, match_topic

T_MS = 1_795_248_001_000  # 2026-11-21T08:00:01Z

ROUTES = (
    TopicRoute("zigbee2mqtt/+", "zigbee2mqtt", "z2m-{1}"),
    TopicRoute("ruuvi/+/+", "ruuvi", "{2}"),
    TopicRoute("shellies/+/sensor/+", "shelly-gen1", "{1}"),
    TopicRoute("+/events/rpc", "shelly-gen2", "{1}"),
    TopicRoute("tele/+/SENSOR", "tasmota", "{1}"),
    TopicRoute("sensors/+", "json", "{1}"),
)


def run(topic: str, payload: bytes | str | dict, routes=ROUTES):  # type: ignore[no-untyped-def]
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return adapt(routes, "mqtt-main", topic, payload)


def values(out) -> dict[str, tuple[object, str]]:  # type: ignore[no-untyped-def]
    assert all(isinstance(o, Measurement) for o in out), out
    return {o.q: (o.val, o.unit) for o in out}


# --- routing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "topic", "captures"),
    [
        ("a/+/c", "a/b/c", ["b"]),
        ("a/#", "a/b/c", []),
        ("a/#", "a", []),
        ("+/events/rpc", "shelly1/events/rpc", ["shelly1"]),
        ("a/+", "a/b/c", None),
        ("a/b", "a/c", None),
        ("+/x", "$SYS/x", None),
        ("#", "$SYS/broker", None),
    ],
)
def test_topic_matching(pattern: str, topic: str, captures: list[str] | None) -> None:
    assert match_topic(pattern, topic) == captures


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pattern": "a/+", "adapter": "nope", "sensor": "s"},
        {"pattern": "a/b+", "adapter": "json", "sensor": "s"},
        {"pattern": "a/#/b", "adapter": "json", "sensor": "s"},
        {"pattern": "a/+", "adapter": "json", "sensor": "{2}"},
        {"pattern": "a/b", "adapter": "json", "sensor": "bad id"},
        {"pattern": "a/b", "adapter": "json", "sensor": "s", "unit": "K"},
    ],
)
def test_invalid_routes_are_refused_at_config_time(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        TopicRoute(**kwargs)  # type: ignore[arg-type]


def test_unrouted_topic_and_invalid_sensor_ids_are_bad_input() -> None:
    (out,) = run("somewhere/else", b"{}")
    assert isinstance(out, BadInput) and out.code == "bad-sensor-id" and out.src == "mqtt-main"
    (out,) = run("zigbee2mqtt/living room", {"temperature": 4})
    assert isinstance(out, BadInput) and out.code == "bad-sensor-id"


def test_quantity_filter() -> None:
    routes = (
        TopicRoute("zigbee2mqtt/+", "zigbee2mqtt", "{1}", quantities=frozenset({"temperature"})),
    )
    out = run("zigbee2mqtt/fridge", {"temperature": 4.2, "humidity": 50, "battery": 90}, routes)
    assert values(out) == {"temperature": (4.2, "CEL")}


# --- adapters -----------------------------------------------------------------------


def test_zigbee2mqtt() -> None:
    out = run(
        "zigbee2mqtt/fridge",
        {"temperature": 4.2, "humidity": 55.1, "battery": 97, "linkquality": 120, "voltage": 2900},
    )
    assert {o.src for o in out} == {"z2m-fridge"}
    assert values(out) == {
        "temperature": (4.2, "CEL"),
        "humidity": (55.1, "P1"),
        "battery": (97, "P1"),
        "linkquality": (120, "C62"),
    }
    assert all(o.dev_t is None for o in out)


def test_zigbee2mqtt_last_seen_with_offset_is_kept() -> None:
    out = run("zigbee2mqtt/f", {"temperature": 4, "last_seen": "2026-11-21T09:00:01+01:00"})
    assert out[0].dev_t == T_MS


def test_ruuvi_decoded_with_sequence_number_and_string_ts() -> None:
    payload = {
        "gw_mac": "C8:25:2D:8E:9C:2C", "ts": str(T_MS // 1000), "temperature": 3.5,
        "humidity": 80.2, "pressure": 100044, "voltage": 2.977,
        "measurementSequenceNumber": 205, "id": "CB:B8:33:4C:88:4F",
    }  # fmt: skip
    out = run("ruuvi/C8:25:2D:8E:9C:2C/CB:B8:33:4C:88:4F", payload)
    assert values(out) == {
        "temperature": (3.5, "CEL"), "humidity": (80.2, "P1"),
        "pressure": (100044, "PAL"), "voltage": (2.977, "VLT"),
    }  # fmt: skip
    assert {(o.src, o.dev_t, o.dev_seq) for o in out} == {("CB:B8:33:4C:88:4F", T_MS, 205)}


RUUVI_RAW = {  # Ruuvi Gateway's default MQTT JSON: the advertisement, not decoded
    "gw_mac": "C8:25:2D:8E:9C:2C", "rssi": -62, "aoa": [], "gwts": str(T_MS // 1000),
    "ts": str(T_MS // 1000), "coords": "",
    "data": "0201061BFF99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F",
}  # fmt: skip
RUUVI_TOPIC = "ruuvi/C8:25:2D:8E:9C:2C/CB:B8:33:4C:88:4F"


def test_ruuvi_raw_advertisement_is_decoded() -> None:
    out = run(RUUVI_TOPIC, RUUVI_RAW)
    assert values(out) == {
        "temperature": (24.3, "CEL"), "humidity": (53.49, "P1"),
        "pressure": (100044, "PAL"), "voltage": (2.977, "VLT"),
    }  # fmt: skip
    assert {(o.src, o.dev_t, o.dev_seq) for o in out} == {("CB:B8:33:4C:88:4F", T_MS, 205)}


def test_ruuvi_raw_not_available_fields_are_null_value_gaps_for_wanted_quantities() -> None:
    invalid = "0201061BFF9904058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF"
    out = run(RUUVI_TOPIC, {**RUUVI_RAW, "data": invalid})
    assert all(isinstance(o, BadInput) for o in out)
    assert sorted((o.code, o.reason, o.detail.split()[0]) for o in out) == [
        ("null-value", "null-value", q) for q in ("humidity", "pressure", "temperature", "voltage")
    ]
    routes = (TopicRoute("ruuvi/+/+", "ruuvi", "{2}", quantities=frozenset({"temperature"})),)
    (out,) = run(RUUVI_TOPIC, {**RUUVI_RAW, "data": invalid}, routes)
    assert isinstance(out, BadInput) and out.code == "null-value"
    assert out.detail.startswith("temperature")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("0201061BFF9904", "bad-length"),
        ("0201061BFF99040512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F00"[:-1], "not-hex"),
        ("0201060FFF99040612FC5394C37C0004FFFC04", "unknown-data-format"),
        ("02010603FF4C00", "not-ruuvi"),
        (205, "bad-shape"),
        (None, "bad-shape"),
    ],
)
def test_ruuvi_raw_refusals_are_coded(data: object, code: str) -> None:
    (out,) = run(RUUVI_TOPIC, {**RUUVI_RAW, "data": data})
    assert isinstance(out, BadInput) and out.code == code and out.src == "CB:B8:33:4C:88:4F"
    assert code in MQTT_BAD_CODES


def test_shelly_gen1_bare_numbers_and_configured_unit() -> None:
    assert values(run("shellies/ht1/sensor/temperature", "4.25")) == {"temperature": (4.25, "CEL")}
    assert values(run("shellies/ht1/sensor/humidity", "55")) == {"humidity": (55, "P1")}
    assert run("shellies/ht1/sensor/act_reasons", '["sensor"]') == []
    routes = (TopicRoute("shellies/+/sensor/+", "shelly-gen1", "{1}", unit="FAH"),)
    assert values(run("shellies/ht1/sensor/temperature", "39.6", routes)) == {
        "temperature": (39.6, "FAH")
    }
    (out,) = run("shellies/ht1/sensor/temperature", "warm")
    assert isinstance(out, BadInput) and out.code == "bad-value"


def test_shelly_gen2_notify_full_status() -> None:
    payload = {
        "src": "shellyhtg3-84fce63ad204", "dst": "x/events", "method": "NotifyFullStatus",
        "params": {
            "ts": T_MS / 1000,
            "temperature:0": {"id": 0, "tC": 4.2, "tF": 39.6},
            "temperature:100": {"id": 100, "tC": -18.5, "tF": -1.3},
            "humidity:0": {"id": 0, "rh": 55.1},
            "devicepower:0": {"id": 0, "battery": {"V": 5.9, "percent": 87}},
            "sys": {"unixtime": 1},
        },
    }  # fmt: skip
    out = run("shellyhtg3-84fce63ad204/events/rpc", payload)
    assert {(o.src, o.q, o.val, o.unit, o.dev_t) for o in out} == {
        ("shellyhtg3-84fce63ad204", "temperature", 4.2, "CEL", T_MS),
        ("shellyhtg3-84fce63ad204.100", "temperature", -18.5, "CEL", T_MS),
        ("shellyhtg3-84fce63ad204", "humidity", 55.1, "P1", T_MS),
        ("shellyhtg3-84fce63ad204", "battery", 87, "P1", T_MS),
    }
    assert run("s/events/rpc", {"method": "NotifyEvent", "params": {"events": []}}) == []


def test_tasmota_local_time_kept_only_with_configured_zone() -> None:
    payload = {"Time": "2026-11-21T09:00:01", "DS18B20": {"Temperature": 4.2}, "TempUnit": "C"}
    (out,) = run("tele/cold3/SENSOR", payload)
    assert (out.src, out.val, out.unit, out.dev_t) == ("cold3", 4.2, "CEL", None)
    routes = (TopicRoute("tele/+/SENSOR", "tasmota", "{1}", device_zone="Europe/Berlin"),)
    (out,) = run("tele/cold3/SENSOR", payload, routes)
    assert out.dev_t == T_MS


def test_tasmota_fahrenheit_and_several_probes() -> None:
    payload = {
        "Time": "2026-11-21T09:00:01", "TempUnit": "F",
        "DS18B20-1": {"Temperature": 39.2}, "AM2301": {"Temperature": 40.1, "Humidity": 60},
    }  # fmt: skip
    out = run("tele/cold3/SENSOR", payload)
    assert {(o.src, o.q, o.unit) for o in out} == {
        ("cold3.DS18B20-1", "temperature", "FAH"),
        ("cold3.AM2301", "temperature", "FAH"),
        ("cold3.AM2301", "humidity", "P1"),
    }


def test_tasmota_unknown_temp_unit_is_refused_not_recorded_as_celsius() -> None:
    for unit in ("K", "", 1, ["F"]):
        payload = {"DS18B20": {"Temperature": 277.3}, "TempUnit": unit}
        (out,) = run("tele/cold3/SENSOR", payload)
        assert isinstance(out, BadInput) and out.code == "bad-unit", unit
    (out,) = run("tele/cold3/SENSOR", {"DS18B20": {"Temperature": 39.2}, "TempUnit": "f"})
    assert (out.val, out.unit) == (39.2, "FAH")
    (out,) = run("tele/cold3/SENSOR", {"DS18B20": {"Temperature": 4.2}})  # Tasmota's default
    assert (out.val, out.unit) == (4.2, "CEL")


def test_plain_json_unknown_unit_is_refused() -> None:
    (out,) = run("sensors/p", {"temperature": 277.3, "unit": "K"})
    assert isinstance(out, BadInput) and out.code == "bad-unit"


@pytest.mark.parametrize(
    ("topic", "payload", "src", "q"),
    [
        ("zigbee2mqtt/f", {"temperature": None, "humidity": 50}, "z2m-f", "temperature"),
        ("ruuvi/gw/tag", {"temperature": None, "humidity": 50, "ts": "1"}, "tag", "temperature"),
        (
            "s/events/rpc",
            {"method": "NotifyStatus", "params": {"temperature:100": {"id": 100, "tC": None}}},
            "s.100",
            "temperature",
        ),
        ("tele/c/SENSOR", {"AM2301": {"Temperature": 4.1, "Humidity": None}}, "c", "humidity"),
        ("sensors/p", {"temperature": None, "humidity": 50}, "p", "temperature"),
        ("sensors/p", {"q": "temperature", "val": None, "unit": "CEL"}, "p", "temperature"),
    ],
)
def test_a_null_value_is_a_coded_loss_not_silence(
    topic: str, payload: dict[str, object], src: str, q: str
) -> None:
    bad = [o for o in run(topic, payload) if isinstance(o, BadInput)]
    assert [(o.src, o.code, o.reason) for o in bad] == [(src, "null-value", "null-value")]
    assert bad[0].detail.startswith(q)


def test_a_null_value_the_route_does_not_want_is_ignored() -> None:
    routes = (TopicRoute("sensors/+", "json", "{1}", quantities=frozenset({"humidity"})),)
    assert values(run("sensors/p", {"temperature": None, "humidity": 50}, routes)) == {
        "humidity": (50, "P1")
    }


def test_plain_json_both_shapes() -> None:
    out = run("sensors/probe1", {"temperature": 39.0, "unit": "F", "t": T_MS, "seq": 3})
    assert [(o.val, o.unit, o.dev_t, o.dev_seq) for o in out] == [(39.0, "FAH", T_MS, 3)]
    out = run(
        "sensors/probe1",
        {"q": "temperature", "val": -20, "unit": "CEL", "t": "1970-01-01T00:00:00Z"},
    )
    assert [(o.q, o.val, o.dev_t) for o in out] == [("temperature", -20, None)]


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("sensors/p", b"\xff\xfe", "not-utf8"),
        ("sensors/p", b"{not json", "not-json"),
        ("sensors/p", b"NaN", "not-json"),
        ("sensors/p", b'{"temperature": NaN}', "not-json"),
        ("sensors/p", b"[1,2]", "bad-shape"),
        ("sensors/p", b"{}", "bad-shape"),
        ("sensors/p", b'{"temperature": "4.2"}', "bad-value"),
        ("sensors/p", b'{"temperature": true}', "bad-value"),
        ("sensors/p", b'{"temperature": 1e999}', "bad-value"),
        ("sensors/p", b'{"q": "Temp!", "val": 1, "unit": "CEL"}', "bad-shape"),
        ("zigbee2mqtt/f", b'{"temperature": [4]}', "bad-value"),
        ("shellies/h/sensor/temperature", "４.２".encode(), "bad-value"),  # fullwidth: UTF-8
        ("shellies/h/sensor/temperature", b"4.2\xff", "not-utf8"),
        ("sensors/p", b"[" * 100_000, "payload-too-large"),
        ("sensors/p", b"[" * 50_000, "not-json"),  # deep nesting: RecursionError, caught
        ("s/events/rpc", b'{"method": "NotifyStatus", "params": 3}', "bad-shape"),
    ],
)
def test_bad_payloads(topic: str, payload: bytes, code: str) -> None:
    out = run(topic, payload)
    assert [o.code for o in out if isinstance(o, BadInput)] == [code]


# --- the simulator's payloads parse (independent encoder, same wire format) --------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_simulator_payloads_parse(fmt: str) -> None:
    sample = Sample(temperature_c=-18.25, humidity_pct=61.5, seq=9, device_ms=T_MS)
    for topic, payload in FORMATS[fmt](f"{fmt.replace('-', '')}-01", sample):
        out = run(topic, payload)
        assert out and all(isinstance(o, Measurement) for o in out), (topic, out)
        temps = [o for o in out if o.q == "temperature"]
        for o in temps:
            assert (o.val, o.unit) == (-18.25, "CEL")


# --- fuzz ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(ADAPTERS)), st.binary(max_size=200))
def test_any_bytes_never_raise(adapter: str, payload: bytes) -> None:
    routes = (TopicRoute("t/+/x/+", adapter, "{1}"),)
    for obs in adapt(routes, "mqtt-main", "t/dev/x/temperature", payload):
        assert isinstance(obs, Measurement | BadInput)
        if isinstance(obs, BadInput):
            assert obs.code in MQTT_BAD_CODES


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "temperature",
                    "humidity",
                    "battery",
                    "ts",
                    "Time",
                    "TempUnit",
                    "DS18B20",
                    "params",
                    "method",
                    "temperature:0",
                    "tC",
                    "rh",
                    "q",
                    "val",
                    "unit",
                    "t",
                    "seq",
                    "last_seen",
                    "measurementSequenceNumber",
                    "devicepower:0",
                    "percent",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(ADAPTERS)), _json)
def test_any_json_never_raises(adapter: str, obj: object) -> None:
    if isinstance(obj, dict) and adapter == "shelly-gen2":
        obj = {"method": "NotifyStatus", "params": obj}
    payload = json.dumps(obj).encode()
    routes = (TopicRoute("t/+/x/+", adapter, "{1}"),)
    for obs in adapt(routes, "mqtt-main", "t/dev/x/temperature", payload):
        assert isinstance(obs, Measurement | BadInput)
