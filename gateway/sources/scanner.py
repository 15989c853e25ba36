"""Serial barcode scanners: AIM symbology ids, GS separators, GS1 via gs1_codec.

A scanner sends ``[symbology id] data <suffix>`` where the suffix is CR, LF, CRLF
or TAB depending on how it was programmed. Data may contain GS (ASCII 29) as
the FNC1 field separator; it is kept in ``raw``. See docs/scanners.md for what
becomes a :class:`ScanEvent` and what becomes a :class:`BadInput`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from gateway.observations import BadInput, Observation, ScanEvent

from .backoff import BackoffPolicy, truncate_for_log
from .gs1_codec import SymbologyError, parse_gs1, split_symbology
from .line_framer import LineFramer, Overflow
from .serial_port import OpenStream, SerialLineSource
from .serial_sensor import SOURCE_NAME

__all__ = ["GS1_SYMBOLOGIES", "SerialScannerConfig", "SerialScannerSource", "parse_scan"]

SCAN_TERMINATORS = b"\r\n\t"
MAX_SCAN_CHARS = 4096  # the Scan record's limit on 'raw'
GS = "\x1d"
# Symbology ids whose data is GS1 by definition: failing to parse them is an error.
GS1_SYMBOLOGIES = frozenset(
    {"]C1", "]d2", "]Q3", "]e0", "]e1", "]e2", "]J1", "]E0", "]E3", "]E4", "]I1"}
)


def parse_scan(src: str, line: bytes | Overflow) -> Observation:
    """One scanner line into a :class:`ScanEvent` or a :class:`BadInput`.

    GS1 symbologies must parse as GS1. Non-GS1 symbologies and reads without an
    identifier are kept as scans even when they are not GS1 (asset and location
    labels are often plain Code 128), with ``gs1`` filled when they do parse;
    except that all-digit data that fails GS1 parsing is a misread and is bad, and
    so is data that is GS1 by its structure but broken (a Digital Link URI whose
    GTIN has a wrong check digit, GS1 in fullwidth digits).
    """
    if isinstance(line, Overflow):
        return BadInput(src, "line-too-long", f"dropped {line.dropped_bytes} bytes without suffix")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return BadInput(src, "bad-encoding", f"not UTF-8: {truncate_for_log(line)}")
    text = text.strip(" ")
    if not text:
        return BadInput(src, "bad-frame", "empty scan")
    if any((not ch.isprintable() and ch != GS) for ch in text):
        return BadInput(src, "bad-frame", f"control character in scan: {truncate_for_log(text)}")
    try:
        sym, data = split_symbology(text)
    except SymbologyError as e:
        return BadInput(src, "unknown-symbology", f"{e}: {truncate_for_log(text, 8)}")
    if not data:
        return BadInput(src, "bad-frame", "symbology identifier without data")
    parsed = parse_gs1(sym, data)
    if parsed.error and (
        parsed.claimed or sym in GS1_SYMBOLOGIES or data.replace(GS, "").isdigit()
    ):
        return BadInput(src, parsed.code, f"{sym or 'no symbology id'}: {parsed.error}")
    return ScanEvent(src=src, raw=data, sym=sym, gs1=parsed.elements)


@dataclass(frozen=True, slots=True)
class SerialScannerConfig:
    """One scanner on one serial port; ``name`` is the scanner's registry id."""

    name: str
    port: str
    baudrate: int = 9600
    max_scan_bytes: int = MAX_SCAN_CHARS
    read_timeout_s: float = 0.2
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    def __post_init__(self) -> None:
        if not SOURCE_NAME.fullmatch(self.name):
            raise ValueError(f"scanner name {self.name!r} is not a valid id")
        if not self.port:
            raise ValueError(f"scanner {self.name}: 'port' is empty")
        if self.baudrate <= 0 or not 16 <= self.max_scan_bytes <= MAX_SCAN_CHARS:
            raise ValueError(f"scanner {self.name}: bad baudrate or max_scan_bytes")
        if self.read_timeout_s <= 0:
            raise ValueError(f"scanner {self.name}: read_timeout_s must be positive")


class SerialScannerSource(SerialLineSource):
    """Implements :class:`gateway.observations.Source` for one scanner."""

    def __init__(
        self,
        config: SerialScannerConfig,
        open_stream: OpenStream | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(config, open_stream, rng)
        self.config = config

    def framer(self) -> LineFramer:
        return LineFramer(SCAN_TERMINATORS, self.config.max_scan_bytes)

    def decode(self, line: bytes | Overflow) -> list[Observation]:
        return [parse_scan(self.name, line)]
