"""The trajectory queue: bounded, de-duplicating, staleness-aware; data stays in the object store."""

from __future__ import annotations

import asyncio

import pytest

from cluster.job.trajectory_queue import TrajectoryQueue
from contracts.trajectory import BatchMeta


def meta(*episode_ids: int, version: int = 0) -> BatchMeta:
    return BatchMeta(episode_ids=[str(i) for i in episode_ids], worker="w0",
                     oldest_version=version, newest_version=version, turns=len(episode_ids))


def run(coroutine):
    return asyncio.run(coroutine)


def test_take_returns_batches_in_order_and_rejects_duplicates():
    async def scenario():
        queue = TrajectoryQueue(capacity=4)
        assert await queue.put(meta(1, 2), ["a"]) and await queue.put(meta(3), ["b"])
        assert not await queue.put(meta(4, 2), ["again"])
        taken = await queue.take(3, min_version=0)
        return taken, queue.stats()

    taken, stats = run(scenario())
    assert [(m.episode_ids, refs) for m, refs in taken.batches] == [(["1", "2"], ["a"]), (["3"], ["b"])]
    assert taken.episodes == 3
    assert stats["duplicates"] == 1 and stats["depth"] == 0


def test_stale_episodes_are_dropped_and_reported():
    async def scenario():
        queue = TrajectoryQueue(capacity=8)
        for episode_id, version in [(1, 3), (2, 1), (3, 2), (4, 3)]:
            await queue.put(meta(episode_id, version=version), [])
        return await queue.take(3, min_version=2, timeout_s=0.1)

    taken = run(scenario())
    assert [m.episode_ids for m, _ in taken.batches] == [["1"], ["3"], ["4"]]
    assert taken.stale_ids == ["2"]


async def full_queue_with_a_waiting_put() -> tuple[TrajectoryQueue, asyncio.Task, bool]:
    """A queue of capacity 2 holding 2 batches, a third put started, and whether it waits."""
    queue = TrajectoryQueue(capacity=2)
    await queue.put(meta(1), [])
    await queue.put(meta(2), [])
    blocked = asyncio.create_task(queue.put(meta(3), []))
    await asyncio.sleep(0.05)
    return queue, blocked, not blocked.done()


def test_a_full_queue_makes_put_wait_until_the_learner_takes():
    async def scenario():
        queue, blocked, was_blocked = await full_queue_with_a_waiting_put()
        await queue.take(1, min_version=0)
        await asyncio.wait_for(blocked, 1.0)
        return was_blocked, queue.depth()

    assert run(scenario()) == (True, 2)


def test_a_full_queue_takes_the_batches_of_workers_pausing_for_an_evaluation():
    """Paused workers finish what they hold; only an update (after the evaluation) would make
    room, so the queue takes their batches over its capacity until the pause is over."""
    async def scenario():
        queue, blocked, was_blocked = await full_queue_with_a_waiting_put()
        await queue.set_unbounded(True)
        await asyncio.wait_for(blocked, 1.0)
        await queue.put(meta(4), [])
        await queue.set_unbounded(False)
        after = asyncio.create_task(queue.put(meta(5), []))
        await asyncio.sleep(0.05)
        return was_blocked, queue.depth(), after.done()

    assert run(scenario()) == (True, 4, False)


def test_take_waits_for_enough_episodes_or_times_out():
    async def scenario():
        queue = TrajectoryQueue(capacity=4)
        waiting = asyncio.create_task(queue.take(2, min_version=0))
        await queue.put(meta(1), [])
        await asyncio.sleep(0.02)
        assert not waiting.done()
        await queue.put(meta(2), [])
        full = await asyncio.wait_for(waiting, 1.0)
        partial = await queue.take(5, min_version=0, timeout_s=0.05)
        return full.episodes, partial.episodes

    assert run(scenario()) == (2, 0)


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        TrajectoryQueue(0)
