"""The cold-chain verdict engine against figures worked out by hand in each test: USP
<1079.2>'s MKT formula written out with math.exp/math.log, durations and degree-minutes
as sums of readings × minutes. No expected value is obtained by calling the engine."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from proofs import coldchain as cc
from proofs.canonical import canonical_json
from proofs.errors import FormatError

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
WEEK = 7 * DAY


def usp_mkt(temps_c: list[float]) -> float:
    """USP <1079.2> with equal weights, straight from the chapter's formula."""
    terms = [math.exp(-10_000 / (t + 273.15)) for t in temps_c]
    return 10_000 / -math.log(sum(terms) / len(terms)) - 273.15


def weighted_mkt(pairs: list[tuple[float, float]]) -> float:
    """The same formula with explicit weights: [(weight, °C), ...]."""
    total = sum(w for w, _ in pairs)
    mean = sum(w * math.exp(-10_000 / (t + 273.15)) for w, t in pairs) / total
    return 10_000 / -math.log(mean) - 273.15


def hourly(values: list[float], t0: int = 0) -> list[tuple[int, float]]:
    return [(t0 + i * HOUR, v) for i, v in enumerate(values)]


# --- mean kinetic temperature ------------------------------------------------------------


@pytest.mark.parametrize("temp", [-18.0, 0.0, 5.0, 25.0, 40.0])
def test_mkt_of_a_constant_temperature_is_that_temperature(temp: float) -> None:
    irregular = [(0, temp), (5 * MIN, temp), (6 * MIN, temp), (61 * MIN, temp)]
    assert cc.mean_kinetic_temperature(irregular) == pytest.approx(temp, abs=1e-9)


def test_mkt_of_two_equal_weight_temperatures_by_hand() -> None:
    # 20 °C and 30 °C for an hour each. -ln((e^-A + e^-B)/2) = A - ln((1 + e^(A-B))/2).
    a, b = 10_000 / 293.15, 10_000 / 303.15
    by_hand = 10_000 / (a - math.log((1 + math.exp(a - b)) / 2)) - 273.15
    assert 25.0 < by_hand < 30.0  # above the arithmetic mean, below the maximum
    assert cc.mean_kinetic_temperature([(0, 20.0), (HOUR, 30.0)]) == pytest.approx(
        by_hand, abs=1e-9
    )
    assert usp_mkt([20.0, 30.0]) == pytest.approx(by_hand, abs=1e-9)


def test_mkt_of_52_weekly_averages_is_the_usp_formula() -> None:
    # The chapter's own kind of example: a year of weekly mean storage temperatures.
    weekly = [round(22.0 + 4.5 * math.sin(2 * math.pi * (k - 13) / 52), 1) for k in range(52)]
    samples = [(k * WEEK, t) for k, t in enumerate(weekly)]
    expected = usp_mkt(weekly)
    assert cc.mean_kinetic_temperature(samples) == pytest.approx(expected, abs=1e-9)
    assert cc.mean_kinetic_temperature(samples, WEEK) == pytest.approx(expected, abs=1e-9)
    assert sum(weekly) / 52 < expected < max(weekly)


def test_mkt_weighs_each_reading_by_the_time_it_stands_for() -> None:
    # Spacings 1 h then 2 h: the learned interval is 1 h (the lower median), 2 h is not a
    # gap (not more than twice it), the last reading stands for one interval.
    samples = [(0, 4.0), (HOUR, 12.0), (3 * HOUR, 6.0)]
    assert cc.learn_interval(samples) == HOUR
    expected = weighted_mkt([(1, 4.0), (2, 12.0), (1, 6.0)])
    assert cc.mean_kinetic_temperature(samples) == pytest.approx(expected, abs=1e-9)
    assert expected != pytest.approx(usp_mkt([4.0, 12.0, 6.0]), abs=1e-3)


def test_mkt_does_not_let_the_reading_before_a_gap_weigh_the_whole_gap() -> None:
    # A 15-minute logger that stops for 5 hours: the 2 °C reading before the gap holds one
    # interval, not five hours.
    samples = [(0, 10.0), (15 * MIN, 2.0), (5 * HOUR + 15 * MIN, 10.0)]
    expected = weighted_mkt([(15, 10.0), (15, 2.0), (15, 10.0)])
    assert cc.mean_kinetic_temperature(samples, 15 * MIN) == pytest.approx(expected, abs=1e-9)


def test_mkt_of_very_cold_readings_does_not_underflow() -> None:
    # exp(-10000 / 20 K) underflows a double; the engine factors out the hottest term.
    assert cc.mean_kinetic_temperature([(0, -253.15), (MIN, -253.15)]) == pytest.approx(
        -253.15, abs=1e-9
    )
    assert math.exp(-10_000 / 20) < 1e-200


# --- excursions ---------------------------------------------------------------------------


def test_an_hourly_logger_with_one_3_hour_excursion_to_12_degrees() -> None:
    values = [5.0] * 24
    values[10] = values[11] = values[12] = 12.0
    (exc,) = cc.excursions(hourly(values), HOUR, 2.0, 8.0)
    assert exc.side == "above"
    assert (exc.start_ms, exc.end_ms) == (10 * HOUR, 13 * HOUR)
    assert exc.duration_ms == 3 * HOUR
    assert exc.peak_c == 12.0
    # three readings, each 60 min at 4 °C above 8 °C
    assert exc.degree_minutes == pytest.approx(3 * 60 * (12.0 - 8.0))
    assert exc.readings == 3
    assert not exc.gap_before and not exc.gap_after
    assert cc.time_outside_range(hourly(values), HOUR, 2.0, 8.0) == (3 * HOUR, 0)


def test_an_excursion_lasts_as_long_as_it_lasts_not_15_minutes_a_reading() -> None:
    # One reading above range on an hourly logger stood for an hour.
    values = [5.0, 5.0, 9.5, 5.0]
    (exc,) = cc.excursions(hourly(values), HOUR, 2.0, 8.0)
    assert exc.duration_ms == HOUR
    assert exc.degree_minutes == pytest.approx(60 * 1.5)


def test_excursions_below_with_uneven_peaks_and_degree_minutes() -> None:
    # 15-minute logger: 1.5, 0.5, 1.0 °C below a 2 °C floor, then back.
    samples = [(0, 4.0), (15 * MIN, 1.5), (30 * MIN, 0.5), (45 * MIN, 1.0), (60 * MIN, 3.0)]
    (exc,) = cc.excursions(samples, 15 * MIN, 2.0, 8.0)
    assert exc.side == "below"
    assert (exc.start_ms, exc.end_ms) == (15 * MIN, 60 * MIN)
    assert exc.peak_c == 0.5
    assert exc.degree_minutes == pytest.approx(15 * (0.5 + 1.5 + 1.0))
    assert cc.time_outside_range(samples, 15 * MIN, 2.0, 8.0) == (0, 45 * MIN)


def test_a_reading_on_a_bound_is_in_range_and_sides_split_excursions() -> None:
    samples = hourly([8.0, 2.0, 9.0, 1.0, 5.0])
    above, below = cc.excursions(samples, HOUR, 2.0, 8.0)
    assert (above.side, above.start_ms, above.end_ms) == ("above", 2 * HOUR, 3 * HOUR)
    assert (below.side, below.start_ms, below.end_ms) == ("below", 3 * HOUR, 4 * HOUR)


def test_an_excursion_that_reaches_a_gap_ends_one_interval_after_its_last_reading() -> None:
    # 10-minute logger: 12 °C at 00:20, then nothing until 02:00.
    samples = [(0, 5.0), (10 * MIN, 5.0), (20 * MIN, 12.0), (120 * MIN, 12.0), (130 * MIN, 5.0)]
    first, second = cc.excursions(samples, 10 * MIN, 2.0, 8.0)
    assert (first.start_ms, first.end_ms, first.gap_before, first.gap_after) == (
        20 * MIN,
        30 * MIN,
        False,
        True,
    )
    assert (second.start_ms, second.end_ms, second.gap_before, second.gap_after) == (
        120 * MIN,
        130 * MIN,
        True,
        False,
    )
    assert first.degree_minutes == pytest.approx(10 * 4.0)


def test_no_interpolation_across_a_gap_and_a_bound_may_be_open() -> None:
    samples = [(0, -20.0), (HOUR, -15.0), (10 * HOUR, -25.0)]
    (exc,) = cc.excursions(samples, HOUR, None, -18.0)
    assert (exc.start_ms, exc.end_ms, exc.gap_after) == (HOUR, 2 * HOUR, True)
    assert exc.degree_minutes == pytest.approx(60 * 3.0)


# --- completeness -------------------------------------------------------------------------


def test_an_hourly_logger_is_complete() -> None:
    samples = hourly([5.0] * 24)
    assert cc.learn_interval(samples) == HOUR
    c = cc.completeness(samples, HOUR, 0, DAY)
    assert c.gaps == () and c.gap_ms == 0
    assert c.covered_ms == DAY and c.covered_fraction == 1.0
    v = cc.verdict({"logger-1": cc.Series.of(samples)}, cc.CONTROLLED_COLD, 0, DAY)
    assert v.status == "pass" and v.reasons == ()


def test_a_spacing_of_exactly_twice_the_interval_is_not_a_gap() -> None:
    values = [(t * HOUR, 5.0) for t in range(24) if t != 7]  # 06:00 to 08:00: 2 h
    c = cc.completeness(values, HOUR, 0, DAY)
    assert c.gaps == () and c.covered_ms == DAY


def test_gaps_between_readings_and_at_both_ends_of_the_custody() -> None:
    # custody 00:00-24:00; readings 03:00-09:00 and 14:00-19:00 hourly.
    samples = [(t * HOUR, 5.0) for t in [*range(3, 10), *range(14, 20)]]
    c = cc.completeness(samples, HOUR, 0, DAY)
    assert [(g.start_ms, g.end_ms) for g in c.gaps] == [
        (0, 3 * HOUR),  # no reading within two intervals of the custody start
        (10 * HOUR, 14 * HOUR),  # 09:00 holds one interval, then nothing until 14:00
        (20 * HOUR, DAY),  # 19:00 holds one interval
    ]
    assert c.gap_ms == 3 * HOUR + 4 * HOUR + 4 * HOUR
    assert c.covered_ms == DAY - c.gap_ms
    assert c.covered_fraction == pytest.approx(13 / 24)


def test_a_first_reading_near_the_custody_start_stands_from_the_start() -> None:
    c = cc.completeness([(90 * MIN, 5.0), (150 * MIN, 5.0)], HOUR, 0, 3 * HOUR)
    assert c.gaps == () and c.covered_ms == 3 * HOUR


def test_readings_outside_the_custody_do_not_count() -> None:
    samples = hourly([30.0, 30.0, 5.0, 5.0, 5.0, 30.0])
    v = cc.verdict({"p": cc.Series.of(samples)}, cc.CONTROLLED_COLD, 2 * HOUR, 5 * HOUR)
    assert v.status == "pass"
    assert v.sensors[0].readings == 3 and v.sensors[0].max_c == 5.0


# --- verdicts -----------------------------------------------------------------------------


def test_a_gap_that_could_hide_an_excursion_makes_the_verdict_indeterminate() -> None:
    samples = [(t * HOUR, 5.0) for t in range(24) if t not in (10, 11, 12)]
    v = cc.verdict({"logger-1": cc.Series.of(samples, HOUR)}, cc.CONTROLLED_COLD, 0, DAY)
    assert v.status == "indeterminate"
    assert [(r.code, r.status, r.sensor) for r in v.reasons] == [
        ("coverage-gap", "indeterminate", "logger-1")
    ]
    assert "3 h" in v.reasons[0].message
    (gap,) = v.sensors[0].completeness.gaps
    assert (gap.start_ms, gap.end_ms) == (10 * HOUR, 13 * HOUR)


def test_a_proven_excursion_fails_whatever_gaps_there_are() -> None:
    samples = [(t * HOUR, 12.0 if t == 3 else 5.0) for t in range(24) if t not in (10, 11, 12)]
    v = cc.verdict({"logger-1": cc.Series.of(samples, HOUR)}, cc.CONTROLLED_COLD, 0, DAY)
    assert v.status == "fail"
    assert {r.code for r in v.reasons} == {"excursion-above", "coverage-gap"}


def test_each_sensor_is_judged_and_the_lot_gets_the_worst() -> None:
    good = cc.Series.of(hourly([5.0] * 24))
    silent = cc.Series.of([(20 * DAY, 5.0), (20 * DAY + HOUR, 5.0)])  # nothing in custody
    v = cc.verdict({"b": silent, "a": good}, cc.CONTROLLED_COLD, 0, DAY)
    assert [s.sensor for s in v.sensors] == ["a", "b"]
    assert v.status == "indeterminate"
    (reason,) = v.reasons
    assert reason.sensor == "b" and "no reading at all" in reason.message
    assert v.sensors[1].completeness.covered_fraction == 0.0
    assert v.sensors[1].mkt_c is None


def test_no_sensor_is_indeterminate() -> None:
    v = cc.verdict({}, cc.FROZEN, 0, DAY)
    assert v.status == "indeterminate" and v.reasons[0].code == "no-sensors"


def test_controlled_room_allows_excursions_to_15_30_while_mkt_stays_at_25() -> None:
    # 10 days at 22 °C then 2 days at 28 °C, hourly: a permitted excursion; the custody is
    # shorter than the 30-day window, so the window is the custody.
    values = [22.0] * 240 + [28.0] * 48
    mkt = usp_mkt(values)
    assert mkt < 25.0
    v = cc.verdict({"room": cc.Series.of(hourly(values))}, cc.CONTROLLED_ROOM, 0, 12 * DAY)
    assert v.status == "pass"
    assert [(r.code, r.status) for r in v.reasons] == [("excursion-allowed", "pass")]
    f = v.sensors[0]
    assert f.mkt_c == pytest.approx(mkt, abs=1e-9)
    assert f.mkt_max_window_c == pytest.approx(mkt, abs=1e-9)
    assert f.time_above_ms == 48 * HOUR and f.time_above_allowed_ms == 0
    assert f.degree_minutes_above == pytest.approx(48 * 60 * 3.0)


def test_controlled_room_fails_on_mkt_above_25() -> None:
    values = [22.0] * 144 + [29.0] * 144
    assert usp_mkt(values) > 25.0
    v = cc.verdict({"room": cc.Series.of(hourly(values))}, cc.CONTROLLED_ROOM, 0, 12 * DAY)
    assert v.status == "fail"
    assert [(r.code, r.status) for r in v.reasons] == [
        ("excursion-allowed", "pass"),
        ("mkt-above-limit", "fail"),
    ]


def test_controlled_room_fails_beyond_the_allowed_30() -> None:
    values = [22.0] * 24
    values[5] = 31.0
    v = cc.verdict({"room": cc.Series.of(hourly(values))}, cc.CONTROLLED_ROOM, 0, DAY)
    assert v.status == "fail"
    (reason,) = v.reasons
    assert reason.code == "excursion-above" and "allowed 30" in reason.message
    assert v.sensors[0].time_above_allowed_ms == HOUR


def test_mkt_over_any_24_hours_catches_a_hot_spell_that_straddles_midnight() -> None:
    # USP's controlled cold with its 0-15 °C allowance, as a custom profile: 48 h hourly at
    # 5 °C, 15 °C from 20:00 to 02:00. Any 24 h holding the spell: 18 h at 5, 6 h at 15.
    profile = cc.Profile(
        name="usp-cct-with-excursions",
        version=1,
        kind="custom",
        low_c=2.0,
        high_c=8.0,
        allowed_low_c=0.0,
        allowed_high_c=15.0,
        mkt_limit_c=8.0,
        mkt_window_ms=DAY,
    )
    values = [15.0 if 20 <= h < 26 else 5.0 for h in range(48)]
    worst_day = usp_mkt([5.0] * 18 + [15.0] * 6)
    assert worst_day > 8.0
    # calendar days would each hold part of the spell only, and pass
    assert usp_mkt([5.0] * 20 + [15.0] * 4) < 8.0 and usp_mkt([5.0] * 22 + [15.0] * 2) < 8.0
    v = cc.verdict({"truck": cc.Series.of(hourly(values))}, profile, 0, 2 * DAY)
    f = v.sensors[0]
    assert f.mkt_c == pytest.approx(usp_mkt(values), abs=1e-9)
    assert f.mkt_max_window_c == pytest.approx(worst_day, abs=1e-9)
    assert f.mkt_max_window_start_ms is not None
    assert f.mkt_max_window_start_ms <= 20 * HOUR and f.mkt_max_window_start_ms + DAY >= 26 * HOUR
    assert v.status == "fail"
    assert [r.code for r in v.reasons] == ["excursion-allowed", "mkt-above-limit"]
    assert cc.max_window_mkt(hourly(values), HOUR, DAY)[0] == pytest.approx(worst_day, abs=1e-9)


def test_verdict_json_shape_names_profile_and_rules_and_is_canonical() -> None:
    values = [5.0] * 24
    values[10] = values[11] = values[12] = 12.0
    v = cc.verdict({"probe-1": cc.Series.of(hourly(values))}, cc.CONTROLLED_COLD, 0, DAY)
    d = v.to_dict()
    assert set(d) == {"rules", "status", "profile", "custody", "reasons", "sensors"}
    assert d["rules"] == cc.RULES_VERSION == "coldtrail-coldchain/1"
    assert d["profile"] == {
        "digest": cc.CONTROLLED_COLD.digest(),
        "name": "controlled-cold",
        "version": 1,
    }
    assert d["custody"] == {"start_ms": 0, "end_ms": DAY}
    (s,) = d["sensors"]
    assert s["excursions"] == [
        {
            "side": "above",
            "start_ms": 10 * HOUR,
            "end_ms": 13 * HOUR,
            "duration_ms": 3 * HOUR,
            "peak_c": 12.0,
            "degree_minutes": 720.0,
            "readings": 3,
            "gap_before": False,
            "gap_after": False,
        }
    ]
    assert s["mkt_c"] == pytest.approx(usp_mkt(values), abs=1e-9)
    assert json.loads(canonical_json(d)) == json.loads(json.dumps(d))


def test_a_verdict_whose_status_does_not_follow_is_refused() -> None:
    with pytest.raises(FormatError):
        cc.Verdict(
            "pass", (cc.Reason("coverage-gap", "indeterminate", "x"),), (), "d", "n", 1, 0, 1
        )


# --- profiles -----------------------------------------------------------------------------


def test_profile_digest_is_sha256_of_its_canonical_json() -> None:
    jcs = (
        '{"allowed_high_c":null,"allowed_low_c":null,"high_c":8,"kind":"controlled-cold",'
        '"low_c":2,"mkt_limit_c":8,"mkt_window_ms":86400000,"name":"controlled-cold",'
        '"type":"coldchain-profile","v":1,"version":1}'
    )
    assert cc.CONTROLLED_COLD.digest() == hashlib.sha256(jcs.encode()).hexdigest()


@pytest.mark.parametrize("profile", list(cc.STANDARD_PROFILES.values()))
def test_profiles_round_trip_through_json(profile: cc.Profile) -> None:
    again = cc.Profile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again == profile and again.digest() == profile.digest()


def test_standard_profiles_say_what_the_issue_says() -> None:
    cold, room, frozen = cc.CONTROLLED_COLD, cc.CONTROLLED_ROOM, cc.FROZEN
    assert (cold.low_c, cold.high_c, cold.mkt_window_ms) == (2.0, 8.0, DAY)
    assert (room.low_c, room.high_c, room.allowed_low_c, room.allowed_high_c) == (20, 25, 15, 30)
    assert (room.mkt_limit_c, room.mkt_window_ms) == (25.0, 30 * DAY)
    assert (frozen.low_c, frozen.high_c) == (None, -18.0)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"low_c": 8.0, "high_c": 2.0}, "profile-bad-range"),
        ({"low_c": 5.0, "high_c": 5.0}, "profile-bad-range"),
        ({"low_c": None, "high_c": None}, "profile-bad-range"),
        ({"high_c": math.nan}, "profile-bad-range"),
        ({"low_c": -300.0}, "profile-bad-range"),
        ({"allowed_high_c": 7.0}, "profile-bad-band"),
        ({"allowed_low_c": 3.0}, "profile-bad-band"),
        ({"low_c": None, "allowed_low_c": 0.0}, "profile-bad-band"),
        ({"mkt_limit_c": math.inf}, "profile-bad-mkt"),
        ({"mkt_window_ms": 0}, "profile-bad-mkt"),
        ({"mkt_window_ms": 1.5}, "profile-bad-mkt"),
        ({"kind": "lukewarm"}, "profile-bad-kind"),
        ({"version": 0}, "profile-bad-version"),
        ({"name": "two words"}, "bad-identifier"),
    ],
)
def test_bad_profiles_are_refused_with_a_code(changes: dict[str, object], code: str) -> None:
    fields = {**cc.CONTROLLED_COLD.to_dict(), **changes}
    del fields["type"], fields["v"]
    with pytest.raises(FormatError) as e:
        cc.Profile(**fields)  # type: ignore[arg-type]
    assert e.value.code == code


@pytest.mark.parametrize(
    "data",
    [
        [],
        {**cc.FROZEN.to_dict(), "colour": "blue"},
        {k: v for k, v in cc.FROZEN.to_dict().items() if k != "high_c"},
        {**cc.FROZEN.to_dict(), "type": "reading"},
        {**cc.FROZEN.to_dict(), "v": 2},
    ],
)
def test_malformed_profile_json_is_refused(data: object) -> None:
    with pytest.raises(FormatError) as e:
        cc.Profile.from_dict(data)
    assert e.value.code == "profile-malformed"


# --- inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (math.nan, "sample-not-finite"),
        (math.inf, "sample-not-finite"),
        (-math.inf, "sample-not-finite"),
        (10**400, "sample-not-finite"),
        (True, "sample-not-a-number"),
        ("5", "sample-not-a-number"),
        (-273.15, "sample-below-absolute-zero"),
    ],
)
def test_bad_values_are_refused(value: object, code: str) -> None:
    for build in (
        lambda: cc.Sample(0, value),  # type: ignore[arg-type]
        lambda: cc.Series((0, 1), (5.0, value), 1),  # type: ignore[arg-type]
        lambda: cc.mean_kinetic_temperature([(0, 5.0), (1, value)]),  # type: ignore[list-item]
    ):
        with pytest.raises(FormatError) as e:
            build()
        assert e.value.code == code


@pytest.mark.parametrize(
    ("times", "code"),
    [
        ((0, 2, 1), "samples-unsorted"),
        ((0, 1, 1), "samples-duplicate-time"),
        ((0, 1.0), "sample-bad-time"),
        ((0, True), "sample-bad-time"),
        ((0, 2**53), "sample-bad-time"),
    ],
)
def test_bad_times_are_refused(times: tuple[object, ...], code: str) -> None:
    values = tuple(5.0 for _ in times)
    with pytest.raises(FormatError) as e:
        cc.Series(times, values, 1)  # type: ignore[arg-type]
    assert e.value.code == code
    with pytest.raises(FormatError) as e:
        cc.excursions(list(zip(times, values, strict=True)), 1, 2.0, 8.0)  # type: ignore[arg-type]
    assert e.value.code == code


@pytest.mark.parametrize("interval", [0, -HOUR, 1.5, True, None])
def test_bad_intervals_are_refused(interval: object) -> None:
    with pytest.raises(FormatError) as e:
        cc.Series((0,), (5.0,), interval)  # type: ignore[arg-type]
    assert e.value.code == "bad-interval"


def test_other_bad_inputs_are_refused_with_codes() -> None:
    cases = [
        (lambda: cc.learn_interval([(0, 5.0)]), "interval-unknown"),
        (lambda: cc.mean_kinetic_temperature([]), "no-samples"),
        (lambda: cc.mean_kinetic_temperature([(0, 5.0, 1)]), "sample-malformed"),
        (lambda: cc.excursions([(0, 5.0)], HOUR, 8.0, 2.0), "bad-range"),
        (lambda: cc.completeness([(0, 5.0)], HOUR, DAY, 0), "custody-bad-window"),
        (lambda: cc.verdict({}, cc.FROZEN, 5, 5), "custody-bad-window"),
        (lambda: cc.verdict({"bad id": cc.Series((), (), 1)}, cc.FROZEN, 0, 1), "bad-identifier"),
        (lambda: cc.Series((0, 1), (5.0,), 1), "sample-malformed"),
    ]
    for build, code in cases:
        with pytest.raises(FormatError) as e:
            build()  # type: ignore[no-untyped-call]
        assert e.value.code == code


def test_series_keep_samples_and_learn_their_interval() -> None:
    s = cc.Series.of([cc.Sample(0, 5), (15 * MIN, 6.0), (30 * MIN, 7.0), (50 * MIN, 7.5)])
    assert s.interval_ms == 15 * MIN
    assert s.values == (5.0, 6.0, 7.0, 7.5) and type(s.values[0]) is float
    assert s.samples[0] == cc.Sample(0, 5.0) and len(s) == 4


def test_the_engine_imports_nothing_beyond_what_proofs_may() -> None:
    # proofs is stdlib + PyNaCl/cryptography/rfc8785 (tests/unit/proofs/test_verifier_install.py);
    # numpy is only the bench's yardstick.
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; before = set(sys.modules); import proofs.coldchain\n"
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    root = Path(__file__).resolve().parents[3]
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
        ).stdout.split()
    )
    assert "proofs" in loaded
    assert not loaded - {"proofs", "rfc8785"} - set(sys.stdlib_module_names)
