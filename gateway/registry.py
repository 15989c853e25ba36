"""The device registry: which sensors and scanners exist and where they belong.

It is a small TinyDB document (JSON, hand-editable with any editor) with two
tables, ``sensors`` and ``scanners``::

    {"sensors":  {"1": {"id": "probe-1", "asset": "truck-07/reefer",
                        "calibration": {"temperature": -0.3}, "silent_after_s": 300}},
     "scanners": {"1": {"id": "dock-scanner", "read_point": "urn:epc:id:sgln:4012345.00001.0",
                        "step": "loading", "asset": "truck-07"}}}

The running gateway re-reads the file when its mtime changes, so an edit takes
effect without a restart; an edit that does not validate is refused (logged,
the previous registry stays in force). The registry is never the spool: editing
it never touches stored records.
"""

from __future__ import annotations

import logging
import math
import os
import time
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinydb import TinyDB

from proofs.records import BUSINESS_STEPS

from .errors import ConfigError

__all__ = ["DeviceRegistry", "RegistryFile", "ScannerEntry", "SensorEntry"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SensorEntry:
    id: str
    asset: str | None = None
    # quantity -> additive offset, applied before signing (the signed value is the calibrated one)
    calibration: Mapping[str, float] = field(default_factory=lambda: types.MappingProxyType({}))
    # No reading for this long => a signed ``silent-sensor`` gap (None: not watched).
    silent_after_s: float | None = None

    def calibrate(self, quantity: str, value: float | int) -> float | int:
        offset = self.calibration.get(quantity)
        if not offset:
            return value
        return round(value + offset, 6)


@dataclass(frozen=True, slots=True)
class ScannerEntry:
    id: str
    read_point: str = ""
    step: str = "inspecting"
    asset: str | None = None

    def __post_init__(self) -> None:
        if self.step not in BUSINESS_STEPS:
            raise ConfigError(
                f"scanner {self.id}: step must be one of {', '.join(sorted(BUSINESS_STEPS))}",
                code="bad-registry",
            )


@dataclass(frozen=True, slots=True)
class DeviceRegistry:
    sensors: Mapping[str, SensorEntry] = field(default_factory=lambda: types.MappingProxyType({}))
    scanners: Mapping[str, ScannerEntry] = field(default_factory=lambda: types.MappingProxyType({}))

    def sensor(self, src: str) -> SensorEntry | None:
        return self.sensors.get(src)

    def scanner(self, src: str) -> ScannerEntry | None:
        return self.scanners.get(src)


def _str_or_none(doc: Mapping[str, Any], key: str, where: str) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' must be a string", code="bad-registry")
    return value


def _sensor(doc: Mapping[str, Any]) -> SensorEntry:
    sid = doc.get("id")
    if not isinstance(sid, str) or not sid:
        raise ConfigError("registry: every sensor needs an 'id'", code="bad-registry")
    where = f"registry sensor {sid}"
    calibration = doc.get("calibration") or {}
    if not isinstance(calibration, dict):
        raise ConfigError(
            f"{where}: 'calibration' must map quantity to offset", code="bad-registry"
        )
    offsets: dict[str, float] = {}
    for quantity, offset in calibration.items():
        if (
            isinstance(offset, bool)
            or not isinstance(offset, int | float)
            or not math.isfinite(offset)
        ):
            raise ConfigError(
                f"{where}: calibration of {quantity} must be a number", code="bad-registry"
            )
        offsets[str(quantity)] = float(offset)
    silent = doc.get("silent_after_s")
    if silent is not None and (
        isinstance(silent, bool) or not isinstance(silent, int | float) or not silent > 0
    ):
        raise ConfigError(
            f"{where}: 'silent_after_s' must be a positive number", code="bad-registry"
        )
    return SensorEntry(
        sid,
        _str_or_none(doc, "asset", where),
        types.MappingProxyType(offsets),
        float(silent) if silent is not None else None,
    )


def _scanner(doc: Mapping[str, Any]) -> ScannerEntry:
    sid = doc.get("id")
    if not isinstance(sid, str) or not sid:
        raise ConfigError("registry: every scanner needs an 'id'", code="bad-registry")
    where = f"registry scanner {sid}"
    return ScannerEntry(
        sid,
        read_point=_str_or_none(doc, "read_point", where) or "",
        step=_str_or_none(doc, "step", where) or "inspecting",
        asset=_str_or_none(doc, "asset", where),
    )


def read_registry(path: Path) -> DeviceRegistry:
    """Parse the registry file; a missing file is an empty registry."""
    if not path.exists():
        return DeviceRegistry()
    try:
        with TinyDB(path, access_mode="r") as db:
            sensors = [_sensor(dict(d)) for d in db.table("sensors").all()]
            scanners = [_scanner(dict(d)) for d in db.table("scanners").all()]
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise ConfigError(f"registry {path} is not valid JSON: {e}", code="bad-registry") from e
    return DeviceRegistry(
        types.MappingProxyType({s.id: s for s in sensors}),
        types.MappingProxyType({s.id: s for s in scanners}),
    )


def write_registry(
    path: Path, sensors: list[dict[str, Any]], scanners: list[dict[str, Any]]
) -> None:
    """Write a registry document (``init`` and tests use it; people may edit by hand)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with TinyDB(path, indent=2, sort_keys=True) as db:
        db.drop_tables()
        db.table("sensors").insert_multiple(sensors)
        db.table("scanners").insert_multiple(scanners)


class RegistryFile:
    """The registry as the daemon sees it: reloaded when the file changes."""

    def __init__(self, path: Path, check_every_s: float = 2.0) -> None:
        self.path = path
        self._check_every_s = check_every_s
        self._checked_at = time.monotonic()
        self._stamp = self._file_stamp()
        self.current = read_registry(path)  # a broken file at startup is a startup error
        self.reload_errors = 0

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def get(self) -> DeviceRegistry:
        now = time.monotonic()
        if now - self._checked_at >= self._check_every_s:
            self._checked_at = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self.current = read_registry(self.path)
                    log.info("device registry %s reloaded", self.path)
                except ConfigError as e:
                    self.reload_errors += 1
                    log.error("device registry edit refused, keeping the previous one: %s", e)
        return self.current
