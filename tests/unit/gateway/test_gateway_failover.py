"""Failover's choice of anchor member: rotation, failback timing, Retry-After."""

from __future__ import annotations

import pytest

from gateway.failover import Failover, Move


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_the_home_member_first_then_the_others_in_list_order(clock) -> None:
    f = Failover(3, failback_s=60, clock=clock)
    assert f.current == 0 and f.order() == (0, 1, 2)
    assert f.answered(0) is Move.STAYED


def test_the_member_that_answered_is_asked_first_from_then_on(clock) -> None:
    f = Failover(3, failback_s=60, clock=clock)
    f.failed(0)
    assert f.answered(1) is Move.FAILED_OVER
    assert f.current == 1 and f.order() == (1, 2, 0)
    f.failed(1)
    assert f.answered(2) is Move.FAILED_OVER
    assert f.order() == (2, 0, 1)  # wraps round: home is asked again within the round


def test_home_is_asked_first_again_failback_s_after_it_failed(clock) -> None:
    f = Failover(3, failback_s=60, clock=clock)
    f.failed(0)
    f.answered(2)
    clock.now += 59.9
    assert not f.failback_due() and f.order() == (2, 0, 1)
    clock.now += 0.1
    assert f.failback_due() and f.order() == (0, 2, 1)  # then the member in use
    assert f.answered(0) is Move.FAILED_BACK
    assert f.current == 0 and not f.failback_due()


def test_a_failback_that_fails_waits_failback_s_again(clock) -> None:
    f = Failover(2, failback_s=60, clock=clock)
    f.failed(0)
    f.answered(1)
    clock.now += 60
    assert f.order() == (0, 1)
    f.failed(0)  # still down
    assert f.answered(1) is Move.STAYED  # not a new failover
    clock.now += 30
    assert f.order() == (1, 0)
    clock.now += 30
    assert f.order() == (0, 1)


def test_failback_zero_asks_home_first_for_every_batch(clock) -> None:
    f = Failover(2, failback_s=0, clock=clock)
    f.failed(0)
    f.answered(1)
    assert f.order() == (0, 1)


def test_a_member_in_retry_after_is_left_out_until_then(clock) -> None:
    f = Failover(3, failback_s=10, clock=clock)
    f.failed(0, retry_after_s=120)
    f.answered(1)
    clock.now += 60  # failback_s has passed, the home member's Retry-After has not
    assert not f.failback_due() and f.order() == (1, 2)
    clock.now += 60
    assert f.failback_due() and f.order() == (0, 1, 2)


def test_when_every_member_is_waiting_all_are_asked(clock) -> None:
    # The uplink slept at least the shortest Retry-After before this round.
    f = Failover(2, failback_s=10, clock=clock)
    f.failed(0, retry_after_s=30)
    f.failed(1, retry_after_s=5)
    assert f.order() == (0, 1)
    clock.now += 5
    assert f.order() == (1,)


def test_a_failure_without_retry_after_clears_an_old_one(clock) -> None:
    f = Failover(2, failback_s=10, clock=clock)
    f.failed(1, retry_after_s=300)
    assert f.order() == (0,)
    f.failed(1)
    assert f.order() == (0, 1)


def test_one_member_is_always_asked(clock) -> None:
    f = Failover(1, failback_s=60, clock=clock)
    f.failed(0, retry_after_s=30)
    assert f.order() == (0,) and f.answered(0) is Move.STAYED


@pytest.mark.parametrize(("members", "failback_s"), [(0, 60), (2, -1)])
def test_nonsense_is_refused(members, failback_s) -> None:
    with pytest.raises(ValueError):
        Failover(members, failback_s=failback_s)
