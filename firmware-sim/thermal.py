"""Plausible cold-chain temperatures, with door-open excursions."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["ThermalModel"]


@dataclass(slots=True)
class ThermalModel:
    """A mean-reverting walk around ``setpoint_c``. A door opening pulls the
    temperature toward ``ambient_c`` for ``excursion_samples`` samples."""

    rng: random.Random
    setpoint_c: float = 4.0
    ambient_c: float = 22.0
    excursion_rate: float = 0.0  # chance per sample that a door opens
    excursion_samples: int = 8
    temperature_c: float = 4.0
    humidity_pct: float = 85.0
    _door_open_for: int = 0

    def __post_init__(self) -> None:
        self.temperature_c = self.setpoint_c

    def step(self) -> tuple[float, float]:
        if self._door_open_for == 0 and self.rng.random() < self.excursion_rate:
            self._door_open_for = self.excursion_samples
        target = self.ambient_c if self._door_open_for else self.setpoint_c
        if self._door_open_for:
            self._door_open_for -= 1
        self.temperature_c += 0.25 * (target - self.temperature_c) + self.rng.gauss(0, 0.05)
        self.humidity_pct = min(100.0, max(0.0, self.humidity_pct + self.rng.gauss(0, 0.3)))
        return round(self.temperature_c, 2), round(self.humidity_pct, 1)

    def open_door(self, samples: int) -> None:
        """A door opens now and stays open for ``samples`` samples (a scripted excursion)."""
        self._door_open_for = max(self._door_open_for, samples)

    @property
    def door_open(self) -> bool:
        return self._door_open_for > 0
