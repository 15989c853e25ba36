"""The cold-chain verdict: excursions, time out of range, degree-minutes, mean kinetic
temperature (MKT), completeness, and ``pass`` | ``fail`` | ``indeterminate``.

A pure function of the readings of each sensor, each sensor's sampling interval and a
versioned product :class:`Profile`, so that the anchor, ``coldtrail-verify`` and the
consumer page (a JS port run on the same vectors, ``tests/vectors/coldchain/``) can all
recompute a verdict from a bundle, years later, under the rules it was made with
(:data:`RULES_VERSION`). docs/verdicts.md gives the formulas and the JSON shape;
docs/adr/0009 says why they are these.

The model of the temperature path, the same for every figure:

* Each reading **holds** from its time until the next reading (zero-order hold): the
  reading at 10:00 stands for 10:00 until the 11:00 reading. No value between readings is
  invented, so a peak is always a measured value and every duration is an exact integer
  number of milliseconds.
* A **gap** is a spacing of more than ``2 × interval`` between consecutive readings (or
  between the custody start and the first reading, or the last reading and the custody
  end). Nothing is interpolated across a gap: the reading before it holds for one
  interval, the rest is unobserved. A first reading within two intervals of the custody
  start stands from the custody start.
* Only readings taken while the lot was held count: ``start_ms <= t < end_ms``.

Temperatures are degrees Celsius; times are integer milliseconds (UTC epoch or any other
origin: shifting every time leaves every figure unchanged).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, islice, pairwise
from operator import lt, sub
from typing import Any, Final, Literal, cast

from .canonical import canonical_json
from .errors import FormatError
from .identifiers import check_identifier

__all__ = [
    "ACTIVATION_ENERGY_K",
    "CHECKED_QUANTITY",
    "CONTROLLED_COLD",
    "CONTROLLED_ROOM",
    "DEFAULT_DISPOSITIONS",
    "DISPOSITION_KINDS",
    "FROZEN",
    "GAP_FACTOR",
    "HANDOVER_GAP_MS",
    "LONE_READING_INTERVAL_MS",
    "PROFILE_KINDS",
    "RULES_VERSION",
    "STANDARD_PROFILES",
    "Completeness",
    "Excursion",
    "Gap",
    "Leg",
    "LotVerdict",
    "Profile",
    "Reason",
    "Sample",
    "SensorFigures",
    "Series",
    "Status",
    "Verdict",
    "celsius",
    "completeness",
    "duration_words",
    "excursions",
    "learn_interval",
    "lot_verdict",
    "max_window_mkt",
    "mean_kinetic_temperature",
    "sensor_id",
    "time_outside_range",
    "verdict",
]

RULES_VERSION: Final = "coldtrail-coldchain/1"
# ΔH/R of USP <1079.2>: 83.144 kJ/mol over the gas constant, 10,000 K.
ACTIVATION_ENERGY_K: Final = 10_000.0
_KELVIN: Final = 273.15
# A spacing of more than GAP_FACTOR intervals between readings is a gap.
GAP_FACTOR: Final = 2
_MAX_TIME_MS: Final = 2**53 - 1  # what a JSON number (and the JS port) carries exactly
_MINUTE_MS: Final = 60_000
_INF: Final = math.inf

Status = Literal["pass", "fail", "indeterminate"]
Side = Literal["above", "below"]
ProfileKind = Literal["controlled-cold", "controlled-room", "frozen", "custom"]
PROFILE_KINDS: Final[tuple[str, ...]] = ("controlled-cold", "controlled-room", "frozen", "custom")
_STATUS_RANK: Final[Mapping[str, int]] = {"pass": 0, "indeterminate": 1, "fail": 2}
PROFILE_TYPE: Final = "coldchain-profile"


# --- input checks -----------------------------------------------------------------------


def _check_time(t: object, what: str = "a sample time") -> int:
    if type(t) is not int or not -_MAX_TIME_MS <= t <= _MAX_TIME_MS:
        raise FormatError(
            f"{what} must be an integer number of milliseconds within ±(2^53 - 1): {t!r:.40}",
            code="sample-bad-time",
        )
    return t


def _check_value(v: object) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FormatError(f"a sample value must be a number: {v!r:.40}", code="sample-not-a-number")
    try:
        value = float(v)
    except OverflowError as e:
        raise FormatError(
            f"a sample value is out of range: {v!r:.40}", code="sample-not-finite"
        ) from e
    if not math.isfinite(value):
        raise FormatError(f"a sample value must be finite, not {value}", code="sample-not-finite")
    if value <= -_KELVIN:
        raise FormatError(
            f"{value} °C is at or below absolute zero", code="sample-below-absolute-zero"
        )
    return value


def _check_interval(interval_ms: object) -> int:
    if type(interval_ms) is not int or not 0 < interval_ms <= _MAX_TIME_MS:
        raise FormatError(
            f"a sampling interval must be a positive integer number of milliseconds: "
            f"{interval_ms!r:.40}",
            code="bad-interval",
        )
    return interval_ms


def _check_order(times: Sequence[int]) -> None:
    """Strictly increasing, or a ``FormatError`` naming the first offence."""
    if all(map(lt, times, islice(times, 1, None))):
        return
    for i in range(1, len(times)):
        if times[i] == times[i - 1]:
            raise FormatError(
                f"two samples share the time {times[i]} ms", code="samples-duplicate-time"
            )
        if times[i] < times[i - 1]:
            raise FormatError(
                f"samples are not in time order: {times[i]} ms after {times[i - 1]} ms",
                code="samples-unsorted",
            )


def _check_bound(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FormatError(f"{what} must be a number or null: {value!r:.40}", code="bad-range")
    bound = float(value)
    if not math.isfinite(bound) or bound <= -_KELVIN:
        raise FormatError(f"{what} must be finite and above absolute zero", code="bad-range")
    return bound


def _check_range(low: object, high: object) -> tuple[float | None, float | None]:
    lo, hi = _check_bound(low, "the low bound"), _check_bound(high, "the high bound")
    if lo is not None and hi is not None and not lo < hi:
        raise FormatError(f"the range {lo:g}..{hi:g} °C is empty", code="bad-range")
    return lo, hi


# --- samples and series -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: ``t_ms`` (integer milliseconds) and ``value`` (°C, finite, above
    absolute zero). An ``int`` value is kept as the equal ``float``."""

    t_ms: int
    value: float

    def __post_init__(self) -> None:
        _check_time(self.t_ms)
        object.__setattr__(self, "value", _check_value(self.value))


SampleLike = Sample | tuple[int, float]


def _columns(samples: Iterable[SampleLike]) -> tuple[list[int], list[float]]:
    """Validated time and value columns of ``samples`` (Samples or ``(t_ms, °C)`` pairs)."""
    times: list[int] = []
    values: list[float] = []
    add_t, add_v = times.append, values.append
    for s in samples:
        if type(s) is Sample:
            add_t(s.t_ms)
            add_v(s.value)
            continue
        try:
            t, v = cast(tuple[int, float], s)
        except (TypeError, ValueError) as e:
            raise FormatError(
                f"a sample is a Sample or a (t_ms, value) pair: {s!r:.60}", code="sample-malformed"
            ) from e
        add_t(_check_time(t))
        add_v(_check_value(v))
    _check_order(times)
    return times, values


@dataclass(frozen=True, slots=True)
class Series:
    """One sensor's readings in time order and its sampling interval (declared in the
    device registry, or learned with :func:`learn_interval`).

    Kept as two columns rather than one object per reading: a lot can carry a million
    readings, and the verdict reads the columns without copying them.
    """

    times_ms: tuple[int, ...]
    values: tuple[float, ...]
    interval_ms: int

    def __post_init__(self) -> None:
        _check_interval(self.interval_ms)
        times, values = tuple(self.times_ms), tuple(self.values)
        if len(times) != len(values):
            raise FormatError(
                f"{len(times)} times but {len(values)} values", code="sample-malformed"
            )
        for t in times:
            if type(t) is not int:
                _check_time(t)
        if times and not (min(times) >= -_MAX_TIME_MS and max(times) <= _MAX_TIME_MS):
            _check_time(min(times) if min(times) < -_MAX_TIME_MS else max(times))
        if not all(type(v) is float for v in values):
            values = tuple(_check_value(v) for v in values)
        elif values and not (
            math.isfinite(sum(values)) and min(values) > -_KELVIN
        ):  # one C-speed pass for the usual case; the slow one names the culprit
            for v in values:
                _check_value(v)
        _check_order(times)
        object.__setattr__(self, "times_ms", times)
        object.__setattr__(self, "values", values)

    @classmethod
    def of(cls, samples: Iterable[SampleLike], interval_ms: int | None = None) -> Series:
        """A series from Samples or ``(t_ms, value)`` pairs; the interval is learned from
        them (:func:`learn_interval`) when not given."""
        times, values = _columns(samples)
        if interval_ms is None:
            interval_ms = _median_spacing(times)
        return cls(tuple(times), tuple(values), interval_ms)

    @property
    def samples(self) -> tuple[Sample, ...]:
        return tuple(Sample(t, v) for t, v in zip(self.times_ms, self.values, strict=True))

    def __len__(self) -> int:
        return len(self.times_ms)


def _median_spacing(times: Sequence[int]) -> int:
    if len(times) < 2:
        raise FormatError(
            "the sampling interval cannot be learned from fewer than two samples",
            code="interval-unknown",
        )
    spacings: list[int] = sorted(map(sub, islice(times, 1, None), times))
    return spacings[(len(spacings) - 1) // 2]


def learn_interval(samples: Iterable[SampleLike]) -> int:
    """The sampling interval a sensor's readings show: the median spacing between
    consecutive readings, in ms (the lower middle one for an even count, so it is always
    an integer and never rounds a spacing up). A median, not a mean or a minimum, so that
    gaps and the odd early or late reading do not move it."""
    times, _ = _columns(samples)
    return _median_spacing(times)


# --- profiles ---------------------------------------------------------------------------

_PROFILE_KEYS: Final = frozenset(
    {
        "type",
        "v",
        "name",
        "version",
        "kind",
        "low_c",
        "high_c",
        "allowed_low_c",
        "allowed_high_c",
        "mkt_limit_c",
        "mkt_window_ms",
        "dispositions",
    }
)
# What a verdict leads to for the stock, unless a profile says otherwise: a failed lot is
# held for a person to decide (reject is a person's or a stricter profile's call).
DISPOSITION_KINDS: Final[tuple[str, ...]] = ("release", "quarantine", "reject", "needs-review")
DEFAULT_DISPOSITIONS: Final[Mapping[str, str]] = {
    "pass": "release",
    "fail": "quarantine",
    "indeterminate": "needs-review",
}
_PROFILE_REQUIRED: Final = frozenset({"type", "v", "name", "version", "kind", "low_c", "high_c"})


@dataclass(frozen=True, slots=True)
class Profile:
    """A product's temperature rules, named in a verdict by :meth:`digest`.

    ``low_c``..``high_c`` is the labelled range (either bound may be ``None``); every
    reading outside it is an excursion. ``allowed_low_c``/``allowed_high_c`` widen what a
    lot may go through and still pass (USP <659>'s "excursions permitted between 15 and
    30 °C"): an excursion inside that band is reported but fails only through the MKT
    rule. ``mkt_limit_c`` fails a lot whose MKT over any window of ``mkt_window_ms``
    (or, without a window, over the whole custody) is above it. ``kind`` names the family
    for people; the figures are the rules.
    """

    name: str
    version: int
    kind: ProfileKind
    low_c: float | None
    high_c: float | None
    allowed_low_c: float | None = None
    allowed_high_c: float | None = None
    mkt_limit_c: float | None = None
    mkt_window_ms: int | None = None
    # verdict status -> disposition, where it differs from DEFAULT_DISPOSITIONS (sorted
    # pairs; a mapping may be given). Absent from to_dict() when None, so the standard
    # profiles' digests do not depend on it.
    dispositions: tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        check_identifier(self.name, "a profile name")
        if self.dispositions is not None:
            pairs = (
                self.dispositions.items()
                if isinstance(self.dispositions, Mapping)
                else self.dispositions
            )
            try:
                rules = dict(pairs)
            except (TypeError, ValueError) as e:
                raise FormatError(
                    "a profile's dispositions map statuses to dispositions",
                    code="profile-bad-dispositions",
                ) from e
            if not set(rules) <= set(_STATUS_RANK) or not all(
                v in DISPOSITION_KINDS for v in rules.values()
            ):
                raise FormatError(
                    f"profile {self.name}: dispositions map pass/fail/indeterminate to one of"
                    f" {', '.join(DISPOSITION_KINDS)}",
                    code="profile-bad-dispositions",
                )
            object.__setattr__(self, "dispositions", tuple(sorted(rules.items())))
        if type(self.version) is not int or not 1 <= self.version <= _MAX_TIME_MS:
            raise FormatError(
                f"a profile version is a positive integer: {self.version!r:.40}",
                code="profile-bad-version",
            )
        if self.kind not in PROFILE_KINDS:
            raise FormatError(
                f"a profile kind is one of {', '.join(PROFILE_KINDS)}: {self.kind!r:.40}",
                code="profile-bad-kind",
            )
        try:
            low, high = _check_range(self.low_c, self.high_c)
            allowed_low = _check_bound(self.allowed_low_c, "the allowed low bound")
            allowed_high = _check_bound(self.allowed_high_c, "the allowed high bound")
        except FormatError as e:
            raise FormatError(f"profile {self.name}: {e.message}", code="profile-bad-range") from e
        if low is None and high is None:
            raise FormatError(f"profile {self.name} bounds neither side", code="profile-bad-range")
        if allowed_low is not None and (low is None or allowed_low > low):
            raise FormatError(
                f"profile {self.name}: the allowed low bound must be at or below the range's",
                code="profile-bad-band",
            )
        if allowed_high is not None and (high is None or allowed_high < high):
            raise FormatError(
                f"profile {self.name}: the allowed high bound must be at or above the range's",
                code="profile-bad-band",
            )
        try:
            mkt_limit = _check_bound(self.mkt_limit_c, "the MKT limit")
        except FormatError as e:
            raise FormatError(f"profile {self.name}: {e.message}", code="profile-bad-mkt") from e
        if self.mkt_window_ms is not None:
            try:
                _check_interval(self.mkt_window_ms)
            except FormatError as e:
                raise FormatError(
                    f"profile {self.name}: the MKT window is a positive number of ms",
                    code="profile-bad-mkt",
                ) from e
        for attr, val in (
            ("low_c", low),
            ("high_c", high),
            ("allowed_low_c", allowed_low),
            ("allowed_high_c", allowed_high),
            ("mkt_limit_c", mkt_limit),
        ):
            object.__setattr__(self, attr, val)

    def to_dict(self) -> dict[str, Any]:
        """The profile as a log entry's JSON; every key present, ``null`` for "none"."""
        return {
            "type": PROFILE_TYPE,
            "v": 1,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "low_c": self.low_c,
            "high_c": self.high_c,
            "allowed_low_c": self.allowed_low_c,
            "allowed_high_c": self.allowed_high_c,
            "mkt_limit_c": self.mkt_limit_c,
            "mkt_window_ms": self.mkt_window_ms,
            **({"dispositions": dict(self.dispositions)} if self.dispositions is not None else {}),
        }

    def disposition_for(self, status: str) -> str:
        """What a verdict of ``status`` does to the stock under this profile."""
        own = dict(self.dispositions or ())
        return own.get(status, DEFAULT_DISPOSITIONS[status])

    @classmethod
    def from_dict(cls, data: object) -> Profile:
        if not isinstance(data, Mapping):
            raise FormatError("a profile is a JSON object", code="profile-malformed")
        keys = set(data)
        if not _PROFILE_REQUIRED <= keys <= _PROFILE_KEYS:
            missing, extra = sorted(_PROFILE_REQUIRED - keys), sorted(keys - _PROFILE_KEYS)
            raise FormatError(
                f"a profile's keys: missing {missing}, unknown {extra}", code="profile-malformed"
            )
        if data["type"] != PROFILE_TYPE or data["v"] != 1:
            raise FormatError(
                f"not a {PROFILE_TYPE} v1: type {data['type']!r:.40}, v {data['v']!r:.10}",
                code="profile-malformed",
            )
        return cls(
            name=data["name"],
            version=data["version"],
            kind=data["kind"],
            low_c=data["low_c"],
            high_c=data["high_c"],
            allowed_low_c=data.get("allowed_low_c"),
            allowed_high_c=data.get("allowed_high_c"),
            mkt_limit_c=data.get("mkt_limit_c"),
            mkt_window_ms=data.get("mkt_window_ms"),
            dispositions=data.get("dispositions"),
        )

    def digest(self) -> str:
        """SHA-256 (hex) of the RFC 8785 canonical JSON of :meth:`to_dict`."""
        return hashlib.sha256(canonical_json(self.to_dict())).hexdigest()


_HOUR_MS: Final = 3_600_000
_DAY_MS: Final = 24 * _HOUR_MS

# USP <659> storage conditions, with the MKT windows of USP <1079.2> (24 h for controlled
# cold, 30 days for controlled room temperature). Controlled cold ships as the label range
# with no permitted excursions: whether a product may go through 0-15 °C is its stability
# data's call, and a custom profile can say so.
CONTROLLED_COLD: Final = Profile(
    name="controlled-cold",
    version=1,
    kind="controlled-cold",
    low_c=2.0,
    high_c=8.0,
    mkt_limit_c=8.0,
    mkt_window_ms=_DAY_MS,
)
CONTROLLED_ROOM: Final = Profile(
    name="controlled-room",
    version=1,
    kind="controlled-room",
    low_c=20.0,
    high_c=25.0,
    allowed_low_c=15.0,
    allowed_high_c=30.0,
    mkt_limit_c=25.0,
    mkt_window_ms=30 * _DAY_MS,
)
# Quick-frozen food: -18 °C or colder; MKT is not a rule for frozen goods.
FROZEN: Final = Profile(name="frozen", version=1, kind="frozen", low_c=None, high_c=-18.0)
STANDARD_PROFILES: Final[Mapping[str, Profile]] = {
    p.name: p for p in (CONTROLLED_COLD, CONTROLLED_ROOM, FROZEN)
}


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Excursion:
    """Consecutive readings on one side of the range with no gap between them.

    ``start_ms`` is when the first of them began to hold (its time, or the custody start),
    ``end_ms`` when the next reading back in range (or on the other side) was taken, or,
    where the excursion runs into a gap, the last reading's time plus one interval
    (``gap_after``); ``gap_before`` says the first reading came after a gap, so the
    excursion may have begun earlier. ``degree_minutes`` is the integral of the distance
    beyond the crossed bound over the excursion, in °C·min; ``peak_c`` the most extreme
    reading."""

    side: Side
    start_ms: int
    end_ms: int
    peak_c: float
    degree_minutes: float
    readings: int
    gap_before: bool
    gap_after: bool

    def __post_init__(self) -> None:
        if self.side not in ("above", "below") or not self.start_ms < self.end_ms:
            raise FormatError("an excursion has a side and a positive duration", code="malformed")

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_ms": self.duration_ms,
            "peak_c": self.peak_c,
            "degree_minutes": self.degree_minutes,
            "readings": self.readings,
            "gap_before": self.gap_before,
            "gap_after": self.gap_after,
        }


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch of the custody no reading stands for."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if not self.start_ms < self.end_ms:
            raise FormatError("a gap has a positive duration", code="malformed")

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    def to_dict(self) -> dict[str, Any]:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "duration_ms": self.duration_ms}


@dataclass(frozen=True, slots=True)
class Completeness:
    """How much of ``start_ms``..``end_ms`` the readings stand for: ``covered_ms`` +
    ``gap_ms`` = ``end_ms - start_ms``."""

    start_ms: int
    end_ms: int
    gaps: tuple[Gap, ...]
    covered_ms: int

    @property
    def gap_ms(self) -> int:
        return sum(g.duration_ms for g in self.gaps)

    @property
    def covered_fraction(self) -> float:
        return self.covered_ms / (self.end_ms - self.start_ms)


@dataclass(frozen=True, slots=True)
class SensorFigures:
    """Every figure of one sensor over the custody. Temperatures are ``None`` when the
    sensor has no reading in it. ``time_above_allowed_ms`` is the time above the allowed
    excursion band's top (the range's top when the profile allows none), likewise below.
    ``mkt_max_window_c`` is the highest MKT of any window of ``mkt_window_ms`` within the
    custody (the whole custody when it is shorter or the profile names no window), and
    ``mkt_max_window_start_ms`` where the first such window starts."""

    sensor: str
    interval_ms: int
    readings: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    mkt_c: float | None
    mkt_window_ms: int | None
    mkt_max_window_c: float | None
    mkt_max_window_start_ms: int | None
    time_above_ms: int
    time_below_ms: int
    time_above_allowed_ms: int
    time_below_allowed_ms: int
    degree_minutes_above: float
    degree_minutes_below: float
    excursions: tuple[Excursion, ...]
    completeness: Completeness

    def to_dict(self) -> dict[str, Any]:
        c = self.completeness
        return {
            "sensor": self.sensor,
            "interval_ms": self.interval_ms,
            "readings": self.readings,
            "min_c": self.min_c,
            "max_c": self.max_c,
            "mean_c": self.mean_c,
            "mkt_c": self.mkt_c,
            "mkt_window_ms": self.mkt_window_ms,
            "mkt_max_window_c": self.mkt_max_window_c,
            "mkt_max_window_start_ms": self.mkt_max_window_start_ms,
            "time_above_ms": self.time_above_ms,
            "time_below_ms": self.time_below_ms,
            "time_above_allowed_ms": self.time_above_allowed_ms,
            "time_below_allowed_ms": self.time_below_allowed_ms,
            "degree_minutes_above": self.degree_minutes_above,
            "degree_minutes_below": self.degree_minutes_below,
            "excursions": [e.to_dict() for e in self.excursions],
            "covered_ms": c.covered_ms,
            "gap_ms": c.gap_ms,
            "covered_fraction": c.covered_fraction,
            "gaps": [g.to_dict() for g in c.gaps],
        }


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a verdict is what it is: a stable ``code``, the ``status`` it leads to
    (``pass`` for a note such as a permitted excursion), the sensor and a sentence."""

    code: str
    status: Status
    message: str
    sensor: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUS_RANK:
            raise FormatError(f"a reason's status: {self.status!r:.20}", code="malformed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "status": self.status,
            "sensor": self.sensor,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verdict on one lot's custody under one profile. ``status`` is the worst of
    its reasons' (``fail`` > ``indeterminate`` > ``pass``), ``pass`` when there are none."""

    status: Status
    reasons: tuple[Reason, ...]
    sensors: tuple[SensorFigures, ...]
    profile_digest: str
    profile_name: str
    profile_version: int
    custody_start_ms: int
    custody_end_ms: int
    rules_version: str = RULES_VERSION

    def __post_init__(self) -> None:
        worst = max((_STATUS_RANK[r.status] for r in self.reasons), default=0)
        if self.status not in _STATUS_RANK or _STATUS_RANK[self.status] != worst:
            raise FormatError(
                f"the status {self.status!r:.20} does not follow from the reasons",
                code="malformed",
            )

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape (docs/verdicts.md). Numbers are not rounded: rounding
        is for presentation."""
        return {
            "rules": self.rules_version,
            "status": self.status,
            "profile": {
                "digest": self.profile_digest,
                "name": self.profile_name,
                "version": self.profile_version,
            },
            "custody": {"start_ms": self.custody_start_ms, "end_ms": self.custody_end_ms},
            "reasons": [r.to_dict() for r in self.reasons],
            "sensors": [s.to_dict() for s in self.sensors],
        }


# --- the engine -------------------------------------------------------------------------


@dataclass(slots=True)
class _Path:
    """One sensor's readings in ``start``..``end`` as held segments, and the figures of
    one pass over them."""

    starts: list[int]  # segment starts (a reading's time, or the custody start)
    weights: list[int]  # how long each reading holds, ms (> 0)
    xs: list[float]  # exp(ΔH/R / T_max - ΔH/R / T_i): the Arrhenius term, scaled
    scale: float  # ΔH/R / T_max, the scaling taken back out
    gaps: list[Gap]
    covered_ms: int
    min_c: float | None
    max_c: float | None
    mean_c: float | None
    mkt_c: float | None
    above_ms: int
    below_ms: int
    above_allowed_ms: int
    below_allowed_ms: int
    dm_above: float
    dm_below: float
    excursions: list[Excursion]


def _mkt_from_ratio(scale: float, ratio: float) -> float:
    return ACTIVATION_ENERGY_K / (scale - math.log(ratio)) - _KELVIN


def _walk(
    times: Sequence[int],
    values: Sequence[float],
    interval_ms: int,
    start_ms: int,
    end_ms: int,
    low: float | None,
    high: float | None,
    allowed_low: float | None,
    allowed_high: float | None,
) -> _Path:
    """Everything but the MKT windows, in one pass over the readings in the custody."""
    i0, i1 = bisect_left(times, start_ms), bisect_left(times, end_ms)
    ts, vs = times[i0:i1], values[i0:i1]
    n = len(ts)
    gaps: list[Gap] = []
    if n == 0:
        return _Path(
            [], [], [], 0.0, [Gap(start_ms, end_ms)], 0, None, None, None, None,
            0, 0, 0, 0, 0.0, 0.0, [],
        )  # fmt: skip
    gap_limit = GAP_FACTOR * interval_ms
    hi = _INF if high is None else high
    lo = -_INF if low is None else low
    ahi = hi if allowed_high is None else allowed_high
    alo = lo if allowed_low is None else allowed_low
    k = ACTIVATION_ENERGY_K
    kelvin = _KELVIN
    vmax, vmin = max(vs), min(vs)
    scale = k / (vmax + kelvin)  # every exp argument <= 0: no overflow, at most one term 1
    exp = math.exp

    starts = list(ts)
    weights: list[int] = []
    xs: list[float] = []
    add_w, add_x = weights.append, xs.append
    exc: list[Excursion] = []
    gap_before = ts[0] - start_ms > gap_limit
    if gap_before:
        gaps.append(Gap(start_ms, ts[0]))
    else:
        starts[0] = start_ms
    sum_w = 0
    sum_wx = sum_wv = 0.0
    above = below = above_allowed = below_allowed = 0
    dm_above = dm_below = 0.0
    # the open excursion: side (1 above, -1 below, 0 none), start, peak, °C·ms, readings
    side = 0
    ex_start = ex_n = 0
    ex_peak = ex_dm = 0.0
    ex_gap_before = False
    s = starts[0]
    for t, v, nt in zip(ts, vs, [*islice(ts, 1, None), end_ms], strict=True):
        if nt - t > gap_limit:
            e = t + interval_ms
            gap_after = True
        else:
            e = nt
            gap_after = False
        w = e - s
        add_w(w)
        x = exp(scale - k / (v + kelvin))
        add_x(x)
        sum_w += w
        sum_wx += w * x
        sum_wv += w * v
        if v > hi:
            d = (v - hi) * w
            above += w
            dm_above += d
            if v > ahi:
                above_allowed += w
            if side == 1:
                ex_dm += d
                ex_n += 1
                if v > ex_peak:
                    ex_peak = v
            else:
                if side:
                    exc.append(_excursion(side, ex_start, s, ex_peak, ex_dm, ex_n, ex_gap_before))
                side, ex_start, ex_peak, ex_dm, ex_n, ex_gap_before = 1, s, v, d, 1, gap_before
        elif v < lo:
            d = (lo - v) * w
            below += w
            dm_below += d
            if v < alo:
                below_allowed += w
            if side == -1:
                ex_dm += d
                ex_n += 1
                if v < ex_peak:
                    ex_peak = v
            else:
                if side:
                    exc.append(_excursion(side, ex_start, s, ex_peak, ex_dm, ex_n, ex_gap_before))
                side, ex_start, ex_peak, ex_dm, ex_n, ex_gap_before = -1, s, v, d, 1, gap_before
        elif side:
            exc.append(_excursion(side, ex_start, s, ex_peak, ex_dm, ex_n, ex_gap_before))
            side = 0
        if gap_after:
            gaps.append(Gap(e, nt))
            if side:
                exc.append(_excursion(side, ex_start, e, ex_peak, ex_dm, ex_n, ex_gap_before, True))
                side = 0
        gap_before = gap_after
        s = nt
    if side:
        exc.append(_excursion(side, ex_start, end_ms, ex_peak, ex_dm, ex_n, ex_gap_before))
    return _Path(
        starts=starts,
        weights=weights,
        xs=xs,
        scale=scale,
        gaps=gaps,
        covered_ms=sum_w,
        min_c=vmin,
        max_c=vmax,
        mean_c=sum_wv / sum_w,
        mkt_c=_mkt_from_ratio(scale, sum_wx / sum_w),
        above_ms=above,
        below_ms=below,
        above_allowed_ms=above_allowed,
        below_allowed_ms=below_allowed,
        dm_above=dm_above / _MINUTE_MS,
        dm_below=dm_below / _MINUTE_MS,
        excursions=exc,
    )


def _excursion(
    side: int,
    start: int,
    end: int,
    peak: float,
    dm_c_ms: float,
    readings: int,
    gap_before: bool,
    gap_after: bool = False,
) -> Excursion:
    return Excursion(
        side="above" if side == 1 else "below",
        start_ms=start,
        end_ms=end,
        peak_c=peak,
        degree_minutes=dm_c_ms / _MINUTE_MS,
        readings=readings,
        gap_before=gap_before,
        gap_after=gap_after,
    )


def _max_window(path: _Path, start_ms: int, end_ms: int, window_ms: int) -> tuple[float, int]:
    """The highest MKT of any window ``[a, a + window_ms)`` inside the custody, and the
    smallest such ``a``. Each window's MKT is over the time its readings cover.

    Within a window, the covered time D(a) and the weighted Arrhenius sum N(a) are
    piecewise linear in ``a``, with breaks only where an edge of the window meets an edge
    of a held segment; between breaks N/D is a ratio of linear functions, so monotonic,
    and the maximum is at a break. Hence the candidates: windows starting at a segment's
    start, windows ending at a segment's end, windows starting at a gap's start or ending
    at a gap's end, and the first and last window of the custody.
    """
    starts, weights, xs = path.starts, path.weights, path.xs
    if end_ms - start_ms <= window_ms:
        assert path.mkt_c is not None
        return path.mkt_c, start_ms
    m = len(starts)
    ends = [s + w for s, w in zip(starts, weights, strict=True)]
    pn = list(accumulate(map(float.__mul__, xs, map(float, weights)), initial=0.0))
    pd = list(accumulate(weights, initial=0))
    last_a = end_ms - window_ms
    best, best_a = -1.0, start_ms

    def cumulative(y: int) -> tuple[float, int]:
        j = bisect_right(starts, y) - 1
        if j < 0:
            return 0.0, 0
        part = min(y, ends[j]) - starts[j]
        return pn[j] + xs[j] * part, pd[j] + part

    # Two sweeps with a moving pointer (measured faster here than a bisect per window);
    # `st` ends with a sentinel so the pointer needs no bounds check.
    st = [*starts, 2**63]
    # Windows starting where a segment starts, whose left sums are pn[k], pd[k] exactly:
    j = 0
    for k in range(bisect_right(starts, last_a)):
        a = st[k]
        y = a + window_ms
        while st[j] <= y:
            j += 1
        seg = j - 1
        e = ends[seg]
        part = (y if y < e else e) - st[seg]
        r = (pn[seg] + xs[seg] * part - pn[k]) / (pd[seg] + part - pd[k])
        if r > best:  # ascending a: the first of equals stays
            best, best_a = r, a
    # Windows ending where a segment ends, whose right sums are pn[k + 1], pd[k + 1]:
    j = 0
    for k in range(bisect_left(ends, start_ms + window_ms), m):
        a = ends[k] - window_ms
        while st[j] <= a:
            j += 1
        seg = j - 1
        if seg < 0:
            n_a, d_a = 0.0, 0
        else:
            e = ends[seg]
            part = (a if a < e else e) - st[seg]
            n_a, d_a = pn[seg] + xs[seg] * part, pd[seg] + part
        r = (pn[k + 1] - n_a) / (pd[k + 1] - d_a)
        if r > best or (r == best and a < best_a):
            best, best_a = r, a
    # the few others: the custody's first and last windows, and windows at gap edges
    extra = {start_ms, last_a}
    for g in path.gaps:
        extra.add(g.start_ms)
        extra.add(g.end_ms - window_ms)
    for a in sorted(extra):
        if not start_ms <= a <= last_a:
            continue
        n1, d1 = cumulative(a + window_ms)
        n0, d0 = cumulative(a)
        if d1 == d0:
            continue  # a window with no reading in it says nothing
        r = (n1 - n0) / (d1 - d0)
        if r > best or (r == best and a < best_a):
            best, best_a = r, a
    return _mkt_from_ratio(path.scale, best), best_a


# --- the figures one at a time ----------------------------------------------------------


def _own_span(
    samples: Iterable[SampleLike], interval_ms: int | None
) -> tuple[list[int], list[float], int]:
    times, values = _columns(samples)
    if not times:
        raise FormatError("no samples", code="no-samples")
    interval = _median_spacing(times) if interval_ms is None else _check_interval(interval_ms)
    return times, values, interval


def mean_kinetic_temperature(
    samples: Iterable[SampleLike], interval_ms: int | None = None
) -> float:
    """MKT in °C per USP <1079.2>, with ΔH/R = 10,000 K and T_i in kelvin::

        MKT = (ΔH/R) / (-ln(Σ w_i·exp(-(ΔH/R) / T_i) / Σ w_i)) - 273.15

    ``samples`` are ``(t_ms, °C)`` pairs or Samples. ``w_i`` is the time reading ``i``
    stands for: until the next reading, or one interval when the next is more than two
    intervals away (a gap) or there is none. The interval is ``interval_ms``, or the
    median spacing (:func:`learn_interval`). Equally spaced samples thus weigh the same
    and this is exactly the USP formula. Computed with the hottest reading's term factored
    out, so that no term underflows however cold the readings.
    """
    times, values, interval = _own_span(samples, interval_ms)
    path = _walk(times, values, interval, times[0], times[-1] + interval, None, None, None, None)
    assert path.mkt_c is not None
    return path.mkt_c


def max_window_mkt(
    samples: Iterable[SampleLike], interval_ms: int, window_ms: int
) -> tuple[float, int]:
    """The highest MKT of any ``window_ms`` within the samples' own span (first reading to
    last reading plus one interval), and where that window starts."""
    times, values, interval = _own_span(samples, interval_ms)
    _check_interval(window_ms)
    end = times[-1] + interval
    path = _walk(times, values, interval, times[0], end, None, None, None, None)
    return _max_window(path, times[0], end, window_ms)


def excursions(
    samples: Iterable[SampleLike],
    interval_ms: int,
    low: float | None,
    high: float | None,
) -> tuple[Excursion, ...]:
    """The excursions outside ``low``..``high`` °C (either may be ``None``; a reading on a
    bound is in range) over the samples' own span, in time order. See :class:`Excursion`."""
    lo, hi = _check_range(low, high)
    times, values, interval = _own_span(samples, interval_ms)
    return tuple(
        _walk(
            times, values, interval, times[0], times[-1] + interval, lo, hi, None, None
        ).excursions
    )


def time_outside_range(
    samples: Iterable[SampleLike],
    interval_ms: int,
    low: float | None,
    high: float | None,
) -> tuple[int, int]:
    """Milliseconds above ``high`` and below ``low`` over the samples' own span."""
    lo, hi = _check_range(low, high)
    times, values, interval = _own_span(samples, interval_ms)
    path = _walk(times, values, interval, times[0], times[-1] + interval, lo, hi, None, None)
    return path.above_ms, path.below_ms


def _check_custody(start_ms: int, end_ms: int) -> None:
    _check_time(start_ms, "the custody start")
    _check_time(end_ms, "the custody end")
    if not start_ms < end_ms:
        raise FormatError(
            f"the custody ends ({end_ms}) before it starts ({start_ms})", code="custody-bad-window"
        )


def completeness(
    samples: Iterable[SampleLike], interval_ms: int, start_ms: int, end_ms: int
) -> Completeness:
    """The gaps in ``start_ms``..``end_ms`` and how much of it the readings stand for."""
    _check_custody(start_ms, end_ms)
    times, values = _columns(samples)
    interval = _check_interval(interval_ms)
    path = _walk(times, values, interval, start_ms, end_ms, None, None, None, None)
    return Completeness(start_ms, end_ms, tuple(path.gaps), path.covered_ms)


# --- the verdict ------------------------------------------------------------------------


def _words(ms: int) -> str:
    """A duration for people: rounded to the minute, seconds below one."""
    if ms < _MINUTE_MS:
        return f"{ms / 1000:.0f} s"
    minutes = round(ms / _MINUTE_MS)
    # whole days only from two days up: "24 h" reads better than "1 d"
    days, minutes = divmod(minutes, 24 * 60) if minutes >= 2 * 24 * 60 else (0, minutes)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    return " ".join(parts)


def duration_words(ms: int) -> str:
    """A duration as the verdict's sentences say it: "19 s", "42 min", "3 h 5 min"."""
    return _words(ms)


def _sensor_figures(
    sensor: str, series: Series, profile: Profile, start: int, end: int
) -> SensorFigures:
    path = _walk(
        series.times_ms,
        series.values,
        series.interval_ms,
        start,
        end,
        profile.low_c,
        profile.high_c,
        profile.allowed_low_c,
        profile.allowed_high_c,
    )
    window = profile.mkt_window_ms
    if path.mkt_c is None:
        top: tuple[float | None, int | None] = (None, None)
    elif window is None:
        top = (path.mkt_c, start)
    else:
        top = _max_window(path, start, end, window)
    return SensorFigures(
        sensor=sensor,
        interval_ms=series.interval_ms,
        readings=len(path.weights),
        min_c=path.min_c,
        max_c=path.max_c,
        mean_c=path.mean_c,
        mkt_c=path.mkt_c,
        mkt_window_ms=window,
        mkt_max_window_c=top[0],
        mkt_max_window_start_ms=top[1],
        time_above_ms=path.above_ms,
        time_below_ms=path.below_ms,
        time_above_allowed_ms=path.above_allowed_ms,
        time_below_allowed_ms=path.below_allowed_ms,
        degree_minutes_above=path.dm_above,
        degree_minutes_below=path.dm_below,
        excursions=tuple(path.excursions),
        completeness=Completeness(start, end, tuple(path.gaps), path.covered_ms),
    )


def _excursion_reason(
    f: SensorFigures, side: Side, bound: float | None, allowed: float | None
) -> Reason | None:
    total, beyond = (
        (f.time_above_ms, f.time_above_allowed_ms)
        if side == "above"
        else (f.time_below_ms, f.time_below_allowed_ms)
    )
    if not total or bound is None:
        return None
    s = f.sensor
    mine = [e for e in f.excursions if e.side == side]
    peak = max(e.peak_c for e in mine) if side == "above" else min(e.peak_c for e in mine)
    what = (
        f"{s}: {len(mine)} excursion(s) {side} {bound:g} °C, {_words(total)} in all, "
        f"peak {peak:g} °C, {sum(e.degree_minutes for e in mine):.1f} °C·min"
    )
    if allowed is None:
        return Reason(f"excursion-{side}", "fail", what, s)
    if beyond:
        return Reason(
            f"excursion-{side}",
            "fail",
            f"{what}; {_words(beyond)} {side} the allowed {allowed:g} °C",
            s,
        )
    return Reason(
        "excursion-allowed", "pass", f"{what}, within the allowed excursions to {allowed:g} °C", s
    )


def _reasons(f: SensorFigures, profile: Profile) -> list[Reason]:
    s = f.sensor
    out = [
        r
        for r in (
            _excursion_reason(f, "above", profile.high_c, profile.allowed_high_c),
            _excursion_reason(f, "below", profile.low_c, profile.allowed_low_c),
        )
        if r is not None
    ]
    limit = profile.mkt_limit_c
    if limit is not None and f.mkt_max_window_c is not None and f.mkt_max_window_c > limit:
        span = f"any {_words(f.mkt_window_ms)}" if f.mkt_window_ms is not None else "the custody"
        out.append(
            Reason(
                "mkt-above-limit",
                "fail",
                f"{s}: the mean kinetic temperature over {span} reaches "
                f"{f.mkt_max_window_c:.2f} °C, above the {limit:g} °C limit",
                s,
            )
        )
    c = f.completeness
    if c.gaps:
        sentence = (
            f"{s}: no reading at all while the lot was held"
            if not f.readings
            else f"{s}: no reading for {_words(c.gap_ms)} in {len(c.gaps)} gap(s) of more "
            f"than {GAP_FACTOR} × {_words(f.interval_ms)} while the lot was held; an "
            "excursion could hide there"
        )
        out.append(Reason("coverage-gap", "indeterminate", sentence, s))
    return out


def verdict(
    series_by_sensor: Mapping[str, Series],
    profile: Profile,
    custody_start_ms: int,
    custody_end_ms: int,
) -> Verdict:
    """The verdict on a lot held from ``custody_start_ms`` to ``custody_end_ms`` by the
    sensors' readings under ``profile``.

    Each sensor is judged alone (sensors in one truck measure different places, so one
    sensor's reading does not stand in for another's gap) and the lot gets the worst:
    ``fail`` when a reading is outside what the profile allows or an MKT window is above
    its limit, else ``indeterminate`` when a gap could hide an excursion (or there is no
    sensor), else ``pass``. A proven failure is not undone by a gap elsewhere.
    """
    _check_custody(custody_start_ms, custody_end_ms)
    if not isinstance(profile, Profile):
        raise FormatError("a verdict needs a Profile", code="profile-malformed")
    figures: list[SensorFigures] = []
    reasons: list[Reason] = []
    for sensor in series_by_sensor:
        check_identifier(sensor, "a sensor id")
    for sensor in sorted(series_by_sensor):
        series = series_by_sensor[sensor]
        if not isinstance(series, Series):
            raise FormatError(f"sensor {sensor}: not a Series", code="sample-malformed")
        f = _sensor_figures(sensor, series, profile, custody_start_ms, custody_end_ms)
        figures.append(f)
        reasons.extend(_reasons(f, profile))
    if not figures:
        reasons.append(
            Reason("no-sensors", "indeterminate", "no sensor was with the lot while it was held")
        )
    status = cast(
        Status, max((r.status for r in reasons), key=_STATUS_RANK.__getitem__, default="pass")
    )
    return Verdict(
        status=status,
        reasons=tuple(reasons),
        sensors=tuple(figures),
        profile_digest=profile.digest(),
        profile_name=profile.name,
        profile_version=profile.version,
        custody_start_ms=custody_start_ms,
        custody_end_ms=custody_end_ms,
    )


# --- a lot: several custody legs ---------------------------------------------------------

# The time between one holder's custody and the next one's during which nobody measured
# the lot (a dock, a hand-over) that it may spend before the verdict is indeterminate.
HANDOVER_GAP_MS: Final = 30 * _MINUTE_MS
# The interval of a sensor with a single reading in the whole lot (nothing to learn from).
LONE_READING_INTERVAL_MS: Final = 15 * _MINUTE_MS
_MAX_SENSOR_ID: Final = 128


# The temperature units readings come in (UN/ECE Recommendation 20) and how to get °C.
_TO_CELSIUS: Final[Mapping[str, tuple[float, float]]] = {
    "CEL": (1.0, 0.0),
    "FAH": (5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "KEL": (1.0, -_KELVIN),
}
CHECKED_QUANTITY: Final = "temperature"


def celsius(value: float, unit: str) -> float | None:
    """A temperature reading in °C, or None for a unit that is not a temperature's."""
    scale = _TO_CELSIUS.get(unit)
    if scale is None:
        return None
    return value if unit == "CEL" else value * scale[0] + scale[1]


def sensor_id(gw: str, src: str) -> str:
    """The id a verdict gives the sensor ``src`` of gateway ``gw``: ``gw/src``, or, when
    that is longer than an identifier may be, ``gw/`` and a SHA-256 prefix of ``src``."""
    name = f"{gw}/{src}"
    if len(name) <= _MAX_SENSOR_ID:
        return name
    return f"{gw[:80]}/{hashlib.sha256(src.encode()).hexdigest()[:32]}"


def _distance(value: float, low: float | None, high: float | None) -> float:
    if high is not None and value > high:
        return value - high
    if low is not None and value < low:
        return low - value
    return 0.0


@dataclass(frozen=True, slots=True)
class Leg:
    """One holder's custody of the lot, ``[start_ms, end_ms)``, and the readings of the
    sensors there: sensor id -> ``(t_ms, °C)`` pairs in any order (readings outside the
    window are ignored, as by :func:`verdict`)."""

    holder: str
    start_ms: int
    end_ms: int
    readings: Mapping[str, Sequence[tuple[int, float]]]


@dataclass(frozen=True, slots=True)
class LotVerdict:
    """The verdict on a lot over all its custody legs: each leg judged by :func:`verdict`,
    hand-overs longer than :data:`HANDOVER_GAP_MS` and the caller's ``notes`` (evidence
    the readings cannot show, e.g. an unsynchronised clock; never worse than
    ``indeterminate``) added; the lot's status is the worst."""

    status: Status
    legs: tuple[tuple[str, Verdict], ...]
    notes: tuple[Reason, ...]
    profile_digest: str
    profile_name: str
    profile_version: int
    rules_version: str = RULES_VERSION

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return (*(r for _, v in self.legs for r in v.reasons), *self.notes)

    @property
    def mkt_c(self) -> float | None:
        """The worst MKT window of any sensor in any leg (what a limit is checked on)."""
        found = [s.mkt_max_window_c for _, v in self.legs for s in v.sensors]
        return max((m for m in found if m is not None), default=None)

    @property
    def time_out_of_range_ms(self) -> int:
        """Per leg the sensor that was out of range longest, summed over the legs (two
        sensors in one truck seeing one excursion count it once)."""
        return sum(
            max((s.time_above_ms + s.time_below_ms for s in v.sensors), default=0)
            for _, v in self.legs
        )

    def with_notes(self, notes: Sequence[Reason]) -> LotVerdict:
        """The same verdict with ``notes`` added after its own (what :func:`lot_verdict`
        gives with them at the end of its ``notes``), without judging the readings again."""
        if any(n.status == "fail" for n in notes):
            raise FormatError("a note can only make a verdict indeterminate", code="malformed")
        status = max((self.status, *(n.status for n in notes)), key=_STATUS_RANK.__getitem__)
        return dataclasses.replace(self, notes=(*self.notes, *notes), status=status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rules": self.rules_version,
            "status": self.status,
            "profile": {
                "digest": self.profile_digest,
                "name": self.profile_name,
                "version": self.profile_version,
            },
            "legs": [{"holder": h, "verdict": v.to_dict()} for h, v in self.legs],
            "notes": [r.to_dict() for r in self.notes],
        }


def _leg_series(
    legs: Sequence[Leg], profile: Profile, impossible: dict[str, int]
) -> list[dict[str, Series]]:
    """Each leg's readings as Series: one reading per sensor and millisecond (of two at
    the same time the one farther outside the range, then the warmer: the worse case
    stands), the interval learned from the sensor's readings in all legs. A value no
    thermometer can read (not finite, at or below absolute zero) is counted in
    ``impossible`` and left out."""
    low, high = profile.low_c, profile.high_c
    per_leg: list[dict[str, dict[int, float]]] = []
    every: dict[str, set[int]] = {}
    for leg in legs:
        _check_custody(leg.start_ms, leg.end_ms)
        check_identifier(leg.holder, "a holder id")
        chosen: dict[str, dict[int, float]] = {}
        for sensor, samples in leg.readings.items():
            check_identifier(sensor, "a sensor id")
            kept = chosen.setdefault(sensor, {})
            for t, v in samples:
                _check_time(t)
                if not leg.start_ms <= t < leg.end_ms:
                    continue
                try:
                    value = _check_value(v)
                except FormatError:  # a broken sensor: set aside and said (lot_verdict)
                    impossible[sensor] = impossible.get(sensor, 0) + 1
                    continue
                old = kept.get(t)
                if old is None or (_distance(value, low, high), value) > (
                    _distance(old, low, high),
                    old,
                ):
                    kept[t] = value
            every.setdefault(sensor, set()).update(kept)
        per_leg.append(chosen)
    intervals = {
        s: _median_spacing(sorted(ts)) if len(ts) > 1 else LONE_READING_INTERVAL_MS
        for s, ts in every.items()
    }
    out: list[dict[str, Series]] = []
    for chosen in per_leg:
        series: dict[str, Series] = {}
        for sensor, kept in chosen.items():
            if not kept:
                continue
            times = sorted(kept)
            series[sensor] = Series(tuple(times), tuple(kept[t] for t in times), intervals[sensor])
        out.append(series)
    return out


def lot_verdict(legs: Sequence[Leg], profile: Profile, notes: Sequence[Reason] = ()) -> LotVerdict:
    """The verdict on a lot held by ``legs`` (in time order) under ``profile``.

    ``notes`` are the caller's reasons from evidence beside the readings; each is
    ``indeterminate`` (evidence about evidence can cast doubt on a verdict, never fail a
    lot) or ``pass`` (said beside the verdict without changing it, e.g. a logger with no
    calibration certificate on record). No leg at all is ``indeterminate``
    (``no-custody``)."""
    if not isinstance(profile, Profile):
        raise FormatError("a verdict needs a Profile", code="profile-malformed")
    for n in notes:
        if n.status == "fail":
            raise FormatError(
                f"a note can only make a verdict indeterminate: {n.code}", code="malformed"
            )
    ordered = list(legs)
    for a, b in pairwise(ordered):
        if b.start_ms < a.start_ms:
            raise FormatError("custody legs must be in time order", code="custody-bad-window")
    impossible: dict[str, int] = {}
    judged = [
        (leg.holder, verdict(series, profile, leg.start_ms, leg.end_ms))
        for leg, series in zip(ordered, _leg_series(ordered, profile, impossible), strict=True)
    ]
    extra: list[Reason] = [
        Reason(
            "impossible-reading",
            "indeterminate",
            f"{sensor}: {n} reading(s) no thermometer can give (not finite, or at or below"
            " absolute zero) were set aside: the sensor may be broken",
            sensor,
        )
        for sensor, n in sorted(impossible.items())
    ]
    if not ordered:
        extra.append(Reason("no-custody", "indeterminate", "no scan shows who held the lot"))
    for a, b in pairwise(ordered):
        if b.start_ms - a.end_ms > HANDOVER_GAP_MS:
            extra.append(
                Reason(
                    "custody-gap",
                    "indeterminate",
                    f"nobody measured the lot for {_words(b.start_ms - a.end_ms)} between "
                    f"{a.holder} and {b.holder}; an excursion could hide there",
                )
            )
    all_notes = (*extra, *notes)
    reasons = [r for _, v in judged for r in v.reasons] + list(all_notes)
    status = cast(
        Status, max((r.status for r in reasons), key=_STATUS_RANK.__getitem__, default="pass")
    )
    return LotVerdict(
        status=status,
        legs=tuple(judged),
        notes=all_notes,
        profile_digest=profile.digest(),
        profile_name=profile.name,
        profile_version=profile.version,
    )
