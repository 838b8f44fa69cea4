"""The rollout broker: staleness enforced at the source, accounting exact across worker loss."""

from __future__ import annotations

import asyncio

from cluster.job.broker import RolloutBroker
from cluster.settings.experiment import TrainingConfig
from contracts.trajectory import BatchMeta
from envs.general_points import GPConfig

UNBOUNDED = 1_000_000
"""Updates of a broker whose tests never reach the run's last update."""


def broker(staleness: int = 0, per_update: int = 4) -> RolloutBroker:
    training = TrainingConfig(episodes_per_update=per_update, queue_capacity=16, seed=1000,
                              updates=UNBOUNDED)
    return RolloutBroker(GPConfig(), training, staleness)


def batch(ids: list[str], worker: str = "w0", version: int = 0) -> BatchMeta:
    return BatchMeta(worker=worker, episode_ids=ids, oldest_version=version,
                     newest_version=version, turns=len(ids))


def ids(specs: list[dict]) -> list[str]:
    return [spec["episode_id"] for spec in specs]


def test_staleness_zero_issues_exactly_one_update_of_episodes_per_version():
    async def scenario():
        b = broker(staleness=0, per_update=4)
        first = await b.take_work("w0", 3, 0) + await b.take_work("w1", 3, 0)
        none_left = await b.take_work("w0", 3, 0)
        await b.set_version(1)
        too_old = await b.take_work("w0", 3, 0)
        fresh = await b.take_work("w0", 8, 1)
        return first, none_left, too_old, fresh

    first, none_left, too_old, fresh = asyncio.run(scenario())
    assert ids(first) == ["0", "1", "2", "3"] and [s["seed"] for s in first] == [1000, 1001, 1002, 1003]
    assert none_left == [] and too_old == []
    assert ids(fresh) == ["4", "5", "6", "7"]


def test_staleness_two_lets_workers_run_ahead_and_drops_older_batches():
    async def scenario():
        b = broker(staleness=2, per_update=2)
        ahead = await b.take_work("w0", 10, 0)
        for episode in ahead:
            await b.put(batch([episode["episode_id"]], version=int(episode["episode_id"]) // 2), [])
        await b.set_version(3)
        taken = await b.take_batches(2, timeout_s=0.1)
        return ahead, taken, await b.stats()

    ahead, taken, stats = asyncio.run(scenario())
    assert len(ahead) == 6
    assert taken.stale_ids == ["0", "1"]
    assert [m.episode_ids for m, _ in taken.batches] == [["2"], ["3"]]
    assert all(m.oldest_version >= 3 - 2 for m, _ in taken.batches)
    assert stats["ledger"]["dropped_stale"] == 2


def test_a_lost_workers_held_and_untaken_episodes_are_replayed_exactly_once():
    async def scenario():
        b = broker(staleness=0, per_update=6)
        other = await b.take_work("w1", 2, 0)
        await b.put(batch(ids(other), "w1"), ["kept"])
        held = await b.take_work("w0", 4, 0)
        await b.put(batch(ids(held[:2]), "w0"), ["dies with w0"])
        lost = await b.worker_lost("w0")
        replay = await b.take_work("w2", 6, 0)
        accepted = await b.put(batch(ids(replay), "w2"), ["replayed"])
        late = await b.put(batch(ids(held[2:]), "w0"), ["late"])
        taken = await b.take_batches(6, timeout_s=0.1)
        return lost, replay, accepted, late, taken, await b.stats()

    lost, replay, accepted, late, taken, stats = asyncio.run(scenario())
    assert lost == ["2", "3", "4", "5"] and ids(replay) == ["2", "3", "4", "5"]
    assert accepted and not late
    assert [refs for _, refs in taken.batches] == [["kept"], ["replayed"]]
    assert sorted(i for m, _ in taken.batches for i in m.episode_ids) == ["0", "1", "2", "3", "4", "5"]
    assert stats["ledger"]["completed"] == 6 and stats["ledger"]["reissued"] == 4
    assert stats["ledger"]["duplicates_rejected"] == 2


def test_data_lost_after_taking_is_replayed():
    async def scenario():
        b = broker(staleness=0, per_update=2)
        work = await b.take_work("w0", 2, 0)
        await b.put(batch(ids(work), "w0"), ["gone"])
        await b.take_batches(2, timeout_s=0.1)
        await b.data_lost(ids(work))
        replay = await b.take_work("w1", 2, 0)
        return ids(work), ids(replay), await b.put(batch(ids(replay), "w1"), ["ok"])

    first, replay, accepted = asyncio.run(scenario())
    assert replay == first and accepted


def test_finish_stops_issuing():
    async def scenario():
        b = broker()
        await b.finish()
        return await b.take_work("w0", 4, 0)

    assert asyncio.run(scenario()) == []


def test_no_episode_is_played_beyond_the_last_update():
    async def scenario():
        b = RolloutBroker(GPConfig(), TrainingConfig(episodes_per_update=4, queue_capacity=16,
                                                     updates=2), max_staleness=2)
        return await b.take_work("w0", 100, 0)

    assert len(asyncio.run(scenario())) == 8
