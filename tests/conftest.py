from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.procs import Broker, run_mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free loopback port, stopped by PID afterwards."""
    with run_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker
