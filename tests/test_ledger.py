"""Episode accounting: unique ids, re-runs after a worker loss, no duplicates, exact resume."""

from __future__ import annotations

from cluster.job.ledger import EpisodeLedger


def test_ids_are_unique_and_seeds_follow_them():
    ledger = EpisodeLedger(base_seed=100)
    items = ledger.issue("w0", 3) + ledger.issue("w1", 2)
    assert [i.episode_id for i in items] == [0, 1, 2, 3, 4]
    assert [i.seed for i in items] == [100, 101, 102, 103, 104]


def test_a_lost_workers_episodes_are_reissued_under_the_same_ids():
    ledger = EpisodeLedger()
    held = ledger.issue("w0", 3)
    ledger.issue("w1", 1)
    ledger.complete(held[0].episode_id)
    assert ledger.release("w0") == [1, 2]
    again = ledger.issue("w1", 3, min_version=4)
    assert [i.episode_id for i in again] == [1, 2, 4]
    assert all(i.min_version == 4 for i in again)
    assert [i.seed for i in again[:2]] == [held[1].seed, held[2].seed]
    assert ledger.counts.reissued == 2


def test_each_episode_completes_exactly_once():
    ledger = EpisodeLedger()
    (item,) = ledger.issue("w0", 1)
    assert ledger.complete(item.episode_id)
    assert not ledger.complete(item.episode_id)
    assert not ledger.complete(999)
    assert ledger.counts.completed == 1 and ledger.counts.duplicates_rejected == 2


def test_a_released_then_late_result_is_rejected_once_replayed():
    ledger = EpisodeLedger()
    (item,) = ledger.issue("w0", 1)
    ledger.release("w0")
    (replay,) = ledger.issue("w1", 1)
    assert replay.episode_id == item.episode_id
    assert ledger.complete(replay.episode_id)
    assert not ledger.complete(item.episode_id)


def test_resume_continues_with_the_unplayed_episodes():
    ledger = EpisodeLedger(base_seed=7)
    first = ledger.issue("w0", 4)
    ledger.complete(first[0].episode_id)
    ledger.complete(first[2].episode_id)
    resumed = EpisodeLedger(state=ledger.state())
    assert [i.episode_id for i in resumed.issue("w9", 3)] == [1, 3, 4]
    assert not resumed.complete(0)
    # the two episodes in flight at the snapshot count as issued once, when issued again
    assert resumed.counts.issued == 5 and resumed.counts.reissued == 0


def test_a_snapshot_replays_completed_episodes_whose_data_was_not_trained_on():
    ledger = EpisodeLedger(base_seed=7)
    first = ledger.issue("w0", 4)
    for item in first[:3]:
        ledger.complete(item.episode_id)
    resumed = EpisodeLedger(state=ledger.state(untrained=[first[1].episode_id, first[2].episode_id]))
    assert [(i.episode_id, i.seed) for i in resumed.issue("w9", 4)] == [(1, 8), (2, 9), (3, 10), (4, 11)]
    assert resumed.counts.issued == 5 and resumed.counts.completed == 1
    assert not resumed.complete(0) and resumed.complete(1)


def test_a_group_plays_one_seed_and_survives_a_resume():
    ledger = EpisodeLedger(base_seed=50, group_size=3)
    items = ledger.issue("w0", 4) + ledger.issue("w1", 3)
    assert [i.seed for i in items] == [50, 50, 50, 51, 51, 51, 52]
    ledger.complete(items[0].episode_id)
    resumed = EpisodeLedger(state=ledger.state())
    assert [(i.episode_id, i.seed) for i in resumed.issue("w2", 7)] == [
        (1, 50), (2, 50), (3, 51), (4, 51), (5, 51), (6, 52), (7, 52)]
