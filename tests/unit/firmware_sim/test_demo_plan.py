"""The demo's plan and the process helpers' file writers (no processes started here)."""

from __future__ import annotations

import datetime as dt
import json
import random
import tomllib
from pathlib import Path

from firmware_sim import gs1
from firmware_sim.demo import DemoPlan
from firmware_sim.processes import AnchorNode, GatewayNode, parse_metrics, write_secret
from firmware_sim.thermal import ThermalModel

DAY = dt.date(2026, 11, 21)


def test_the_same_seed_plans_the_same_journey_and_another_seed_another() -> None:
    a, b = DemoPlan.from_seed(7, 30, DAY), DemoPlan.from_seed(7, 30, DAY)
    assert a == b
    assert DemoPlan.from_seed(8, 30, DAY) != a
    assert gs1.check_digit(a.gtin[:-1]) == a.gtin[-1]
    assert gs1.check_digit(a.sscc[:-1]) == a.sscc[-1]
    assert 0.4 < a.door_open_at < 0.5 and a.door_open_samples >= 4


def test_every_lot_scan_names_gtin_and_lot_as_the_anchor_indexes_them() -> None:
    plan = DemoPlan.from_seed(3, 30, DAY)
    for label in (plan.case_label(0), plan.packing_label(1)):
        assert label.startswith("01" + plan.gtin)
        assert "10" + plan.lot in label
    assert plan.case_label(1).endswith("21" + plan.serial(1))
    assert plan.digital_link_path == f"/01/{plan.gtin}/10/{plan.lot}"


def test_an_opened_door_takes_the_temperature_out_of_range() -> None:
    model = ThermalModel(random.Random(1), setpoint_c=4.0)
    model.open_door(4)
    temps = [model.step()[0] for _ in range(4)]
    assert model.door_open is False
    assert temps[-1] > 8.0


def test_gateway_files_are_valid_toml_and_a_tinydb_registry(tmp_path: Path) -> None:
    anchor = AnchorNode(tmp_path / "anchor", 8750)
    anchor.log_vkey = "a.example/log+24b93b6c+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
    node = GatewayNode(
        "gw-1",
        "acme",
        "truck-1",
        tmp_path / "gw",
        sensors=[{"id": "p-1", "asset": "truck-1", "calibration": {"temperature": -0.2}}],
        scanners=[{"id": "s-1", "read_point": "dock", "step": "loading"}],
        sources=[
            {"kind": "serial-sensor", "name": "log", "port": "/dev/x", "sensor_ids": {"A": "p-1"}},
            {
                "kind": "mqtt",
                "name": "broker",
                "host": "127.0.0.1",
                "routes": [{"pattern": "z/+", "adapter": "zigbee2mqtt", "sensor": 'z-"{1}"'}],
            },
        ],
        settings={"batch": {"max_age_s": 2.0}},
    )
    node.write_config(anchor)
    config = tomllib.loads(node.config_path.read_text())
    assert config["gateway"]["id"] == "gw-1"
    assert config["uplink"]["url"] == "http://127.0.0.1:8750"
    assert config["batch"]["max_age_s"] == 2.0
    assert config["sources"][0]["sensor_ids"] == {"A": "p-1"}
    assert config["sources"][1]["routes"][0]["sensor"] == 'z-"{1}"'
    registry = json.loads((node.state_dir / "registry.json").read_text())
    assert registry["sensors"]["1"]["id"] == "p-1"
    assert registry["scanners"]["1"]["step"] == "loading"


def test_secrets_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "t" / "anchor.token"
    write_secret(path, "ct_x\n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "ct_x\n"


def test_metrics_text_is_summed_per_name() -> None:
    text = (
        "# HELP x\n"
        'coldtrail_observations_in_total{kind="reading"} 3.0\n'
        'coldtrail_observations_in_total{kind="scan"} 2.0\n'
        "coldtrail_spool_records 0.0\n"
    )
    assert parse_metrics(text) == {
        "coldtrail_observations_in_total": 5.0,
        "coldtrail_spool_records": 0.0,
    }
