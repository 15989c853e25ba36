"""Notice sensors that stopped reporting: a silent sensor is a loss, and loss is signed.

A sensor with ``silent_after_s`` in the registry that has not produced a
reading for that long gets one ``silent-sensor`` gap record; it is flagged
again only after it has reported in between. Time is monotonic, and a sensor
never seen since the gateway started counts from the start.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .registry import DeviceRegistry

__all__ = ["SilenceWatch"]


class SilenceWatch:
    def __init__(
        self,
        registry: Callable[[], DeviceRegistry],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._monotonic = monotonic
        self._started = monotonic()
        self._last: dict[str, float] = {}
        self._flagged: set[str] = set()

    def seen(self, src: str) -> None:
        self._last[src] = self._monotonic()
        self._flagged.discard(src)

    def overdue(self) -> list[tuple[str, float, float]]:
        """(sensor, seconds silent, limit) for each sensor that just became overdue."""
        now = self._monotonic()
        out = []
        for sensor in self._registry().sensors.values():
            limit = sensor.silent_after_s
            if limit is None or sensor.id in self._flagged:
                continue
            silent = now - self._last.get(sensor.id, self._started)
            if silent >= limit:
                self._flagged.add(sensor.id)
                out.append((sensor.id, silent, limit))
        return out
