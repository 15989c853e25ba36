"""Temperature/humidity loggers on a serial port (USB adapter, UART, pty)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.observations import Observation
from proofs.identifiers import ID_RE

from .backoff import BackoffPolicy
from .line_framer import LineFramer, Overflow
from .serial_frames import parse_line
from .serial_port import OpenStream, SerialLineSource

__all__ = ["SerialSensorConfig", "SerialSensorSource"]

SOURCE_NAME = ID_RE  # a record 'src' id: the one identifier rule (fullmatch)


@dataclass(frozen=True, slots=True)
class SerialSensorConfig:
    """One serial port carrying sensor frames (docs/serial-protocol.md).

    ``name`` is the source's id; it is the ``src`` of bad-frame observations,
    since a corrupt frame cannot be trusted to name its sensor. ``sensor_ids``
    maps ids as devices send them to registry ids (unmapped ids pass through).
    """

    name: str
    port: str  # /dev/ttyUSB0, /dev/serial/by-id/..., or a pty symlink
    baudrate: int = 9600
    sensor_ids: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    max_line_bytes: int = 256
    read_timeout_s: float = 0.2
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    def __post_init__(self) -> None:
        if not SOURCE_NAME.fullmatch(self.name):
            raise ValueError(f"serial source name {self.name!r} is not a valid id")
        if not self.port:
            raise ValueError(f"serial source {self.name}: 'port' is empty")
        if self.baudrate <= 0 or self.max_line_bytes < 16 or self.read_timeout_s <= 0:
            raise ValueError(f"serial source {self.name}: bad baudrate, line cap or timeout")
        for device_id, registry_id in self.sensor_ids.items():
            if not SOURCE_NAME.fullmatch(str(registry_id)):
                raise ValueError(
                    f"serial source {self.name}: sensor_ids[{device_id!r}] is not a valid id"
                )
        # Freeze a caller's dict so the config stays immutable.
        object.__setattr__(self, "sensor_ids", MappingProxyType(dict(self.sensor_ids)))


class SerialSensorSource(SerialLineSource):
    """Implements :class:`gateway.observations.Source` for one sensor port."""

    def __init__(
        self,
        config: SerialSensorConfig,
        open_stream: OpenStream | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(config, open_stream, rng)
        self.config = config

    def framer(self) -> LineFramer:
        return LineFramer(b"\r\n", self.config.max_line_bytes, sync=b"$")

    def decode(self, line: bytes | Overflow) -> list[Observation]:
        return parse_line(line, self.name, self.config.sensor_ids)
