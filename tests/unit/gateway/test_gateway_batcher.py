"""Batch closing policy against an in-memory spool twin and a scripted monotonic clock."""

from __future__ import annotations

import pytest
from gateway_twins import MemoryBatchStore

from gateway.batcher import Batcher, BatchPolicy


def test_policy_closes_on_count_or_age_only_when_not_empty() -> None:
    policy = BatchPolicy(max_records=10, max_age_s=5)
    assert not policy.should_close(0, 100)
    assert not policy.should_close(9, 100, backlog=1)
    assert not policy.should_close(9, 4.9)
    assert policy.should_close(10, 0)
    assert policy.should_close(1, 5)


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        BatchPolicy(max_records=0, max_age_s=1)


async def test_batcher_closes_full_batches_at_once_and_partial_ones_after_the_age() -> None:
    now = [0.0]
    store = MemoryBatchStore(max_records=10)
    batcher = Batcher(store, BatchPolicy(10, 5.0), monotonic=lambda: now[0])
    store.add(25)
    await batcher.step()
    await batcher.step()
    assert store.sealed == [10, 10]
    await batcher.step()
    assert store.sealed == [10, 10]  # 5 left, younger than 5 s
    now[0] = 4.9
    await batcher.step()
    assert store.sealed == [10, 10]
    now[0] = 5.0
    await batcher.step()
    assert store.sealed == [10, 10, 5]
    assert await batcher.step() is None and store.sealed == [10, 10, 5]


async def test_age_starts_when_the_open_batch_gets_its_first_record() -> None:
    now = [100.0]
    store = MemoryBatchStore(max_records=10)
    batcher = Batcher(store, BatchPolicy(10, 5.0), monotonic=lambda: now[0])
    await batcher.step()  # empty: no timer
    now[0] = 200.0
    store.add(1)
    await batcher.step()
    now[0] = 204.0
    await batcher.step()
    assert store.sealed == []
    now[0] = 205.0
    await batcher.step()
    assert store.sealed == [1]


async def test_while_a_backlog_waits_batches_close_by_count_only() -> None:
    now = [0.0]
    store = MemoryBatchStore(max_records=10, sealed_unsent=3)
    batcher = Batcher(store, BatchPolicy(10, 5.0), monotonic=lambda: now[0])
    store.add(4)
    await batcher.step()
    now[0] = 60.0
    await batcher.step()
    assert store.sealed == []  # old enough, but the anchor is behind: keep filling
    store.add(6)
    await batcher.step()
    assert store.sealed == [10]
    store.add(2)
    await batcher.step()
    store.sealed_unsent = 0  # the backlog drained
    now[0] = 70.0
    await batcher.step()
    assert store.sealed == [10, 2]


async def test_while_the_link_is_up_a_draining_backlog_does_not_hold_live_batches() -> None:
    now = [0.0]
    up = [False]
    store = MemoryBatchStore(max_records=10, sealed_unsent=3)
    batcher = Batcher(store, BatchPolicy(10, 5.0), monotonic=lambda: now[0], link_up=lambda: up[0])
    store.add(4)
    await batcher.step()
    now[0] = 60.0
    await batcher.step()
    assert store.sealed == []  # the anchor is unreachable: count only
    up[0] = True  # a receipt arrived: the backlog drains behind live batches
    await batcher.step()
    assert store.sealed == [4]
