"""The TinyDB device registry: hand-editable, reloaded on change, bad edits refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.registry import (
    DeviceRegistry,
    RegistryFile,
    SensorEntry,
    read_registry,
    write_registry,
)
from gateway.silence import SilenceWatch


def test_registry_round_trip_and_hand_edit(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    write_registry(
        path,
        [
            {
                "id": "probe-1",
                "asset": "reefer",
                "calibration": {"temperature": 0.25},
                "silent_after_s": 300,
            }
        ],
        [{"id": "scan-1", "read_point": "dock-1", "step": "unloading"}],
    )
    reg = read_registry(path)
    assert reg.sensor("probe-1").calibrate("temperature", 4.0) == 4.25
    assert reg.sensor("probe-1").calibrate("humidity", 40) == 40
    assert reg.sensor("probe-1").silent_after_s == 300.0
    assert reg.scanner("scan-1").step == "unloading"
    assert read_registry(tmp_path / "absent.json").sensors == {}


def test_bad_step_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_registry(path, [], [{"id": "scan-1", "step": "dancing"}])
    with pytest.raises(ConfigError):
        read_registry(path)


def test_running_registry_reloads_and_keeps_the_old_one_on_a_bad_edit(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_registry(path, [{"id": "probe-1", "asset": "a"}], [])
    live = RegistryFile(path, check_every_s=0)
    assert live.get().sensor("probe-1").asset == "a"
    write_registry(path, [{"id": "probe-1", "asset": "b"}], [])
    os.utime(path, ns=(1, 10**18))
    assert live.get().sensor("probe-1").asset == "b"
    path.write_text("{ not json")
    assert live.get().sensor("probe-1").asset == "b"
    assert live.reload_errors == 1


def test_silent_sensor_is_flagged_once_until_it_reports_again() -> None:
    reg = DeviceRegistry(
        {
            "probe-1": SensorEntry("probe-1", silent_after_s=60),
            "probe-2": SensorEntry("probe-2"),  # not watched
        },
        {},
    )
    now = [0.0]
    watch = SilenceWatch(lambda: reg, monotonic=lambda: now[0])
    now[0] = 59
    assert watch.overdue() == []
    now[0] = 61
    assert watch.overdue() == [("probe-1", 61, 60)]
    now[0] = 500
    assert watch.overdue() == []  # flagged once
    watch.seen("probe-1")
    now[0] = 561
    assert watch.overdue() == [("probe-1", 61, 60)]
