"""An update's batch cut into rank shards (learner.shard): every episode in exactly one shard,
whole groups together, balanced by tokens, the same cut every time; and the whole batch's
statistics come back from the shards' sums (learner.batch_stats)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from contracts.trajectory import EpisodeRecord, TurnRecord, to_record_batch, validate_trajectories
from learner.batch import turns_from_record_batches, turns_from_table
from learner.batch_stats import batch_counts, batch_stats_of
from learner.packing import plan_units, read_counts, read_stats, read_stats_of
from learner.shard import assign_groups, split_batches


def _episode(name: str, seed: int, turns: int, rng: random.Random) -> EpisodeRecord:
    """An episode whose prompts extend (prompt + answer + feedback ids), of random length."""
    record = EpisodeRecord(name, "gp-l", "id", seed)
    prompt = [rng.randrange(5, 50) for _ in range(rng.randrange(4, 30))]
    for t in range(turns):
        response = [rng.randrange(5, 50) for _ in range(rng.randrange(1, 12))]
        last = t + 1 == turns
        record.turns.append(TurnRecord(
            prompt_ids=prompt, response_ids=response, response_logprobs=[-0.5] * len(response),
            policy_version=rng.randrange(0, 3), truncated=False, reward=rng.choice([-1.0, 5.0]),
            done=last, success=last and rng.random() < 0.5, outcome="x", feedback="",
            parsed_answer="", recognition_ok=None, restart=False))
        prompt = prompt + response + [7, 8]
    return record


def _batches(groups: int = 7, group_size: int = 3, per_batch: int = 4,
             seed: int = 1) -> list[pa.RecordBatch]:
    """Record batches of `groups` task instances played `group_size` times each, a group's
    episodes spread over different batches (as several workers would return them)."""
    rng = random.Random(seed)
    episodes = [_episode(f"e{g}-{k}", 1000 + g, rng.randrange(1, 5), rng)
                for k in range(group_size) for g in range(groups)]
    return [to_record_batch(episodes[i : i + per_batch], "w")
            for i in range(0, len(episodes), per_batch)]


def _episodes(table: pa.Table) -> set[str]:
    return set(table.column("episode_id").to_pylist())


def _tokens(table: pa.Table) -> int:
    turns = turns_from_table(table)
    return sum(turns.length(i) for i in range(len(turns)))


def test_every_episode_is_in_exactly_one_shard_with_its_whole_group() -> None:
    batches = _batches()
    whole = pa.Table.from_batches(batches)
    shards = split_batches(batches, 3)
    seen = [_episodes(shard.rows) for shard in shards]
    assert set().union(*seen) == _episodes(whole)
    assert sum(len(s) for s in seen) == len(_episodes(whole))  # disjoint
    assert sum(shard.rows.num_rows for shard in shards) == whole.num_rows  # every turn once
    for shard in shards:
        seeds = set(shard.rows.column("seed").to_pylist())
        # a group's episodes (one seed each) all landed on this rank
        assert {e for e in _episodes(whole) if int(e.split("-")[0][1:]) + 1000 in seeds} \
            == _episodes(shard.rows)
        validate_trajectories(shard.rows)  # whole episodes, turns in order


def test_the_cut_is_deterministic_whatever_the_batch_order() -> None:
    batches = _batches()
    first = [_episodes(s.rows) for s in split_batches(batches, 2)]
    again = [_episodes(s.rows) for s in split_batches(batches, 2)]
    reversed_order = [_episodes(s.rows) for s in split_batches(batches[::-1], 2)]
    assert first == again == reversed_order


def test_groups_go_biggest_first_to_the_least_loaded_rank() -> None:
    # one row per group: tokens 10, 7, 5, 4, 3 -> {10, 4} and {7, 5, 3}
    keys, lengths = ["a", "b", "c", "d", "e"], [10, 7, 5, 4, 3]
    assert assign_groups(keys, lengths, 2) == [[0, 3], [1, 2, 4]]
    # rows of one key stay together, whatever their order
    assert assign_groups(["x", "y", "x"], [1, 5, 1], 2) == [[1], [0, 2]]


def test_shards_are_balanced_by_tokens() -> None:
    batches = _batches(groups=20)
    whole = pa.Table.from_batches(batches)
    rows = whole.to_pydict()
    group_tokens: dict[int, int] = {}
    for seed, prompt, answer in zip(rows["seed"], rows["prompt_ids"], rows["response_ids"],
                                    strict=True):
        group_tokens[seed] = group_tokens.get(seed, 0) + len(prompt) + len(answer)
    for world_size in (2, 3, 4):
        loads = [_tokens(shard.rows) for shard in split_batches(batches, world_size)]
        assert sum(loads) == _tokens(whole)
        # greedy biggest-first: no rank is more than one group above another
        assert max(loads) - min(loads) <= max(group_tokens.values()), loads


def test_more_ranks_than_groups_leaves_a_rank_only_the_filler_turn() -> None:
    batches = _batches(groups=1)
    whole = turns_from_record_batches(batches)
    shards = split_batches(batches, 2)
    assert shards[0].rows.num_rows == len(whole) and shards[1].rows.num_rows == 0
    shortest = min(range(len(whole)), key=whole.length)
    for shard in shards:  # every rank pads with the batch's shortest turn
        filler = turns_from_table(shard.filler)
        assert len(filler) == 1 and filler.prompt_ids[0] == whole.prompt_ids[shortest]
        assert filler.response_ids[0] == whole.response_ids[shortest]
    receipt = shards[1].receipt(1)
    assert (receipt.episode_ids, receipt.turns, receipt.tokens) == ([], 0, 0)
    assert receipt.nbytes == shards[1].filler.nbytes


def test_one_rank_gets_the_whole_batch() -> None:
    batches = _batches()
    (shard,) = split_batches(batches, 1)
    assert shard.rows.num_rows == sum(b.num_rows for b in batches)
    assert shard.receipt(0).tokens == _tokens(pa.Table.from_batches(batches))


def test_bad_input_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="world_size must be at least 1"):
        split_batches(_batches(), 0)
    with pytest.raises(ValueError, match="at least one trajectory batch"):
        split_batches([], 2)


def test_the_shards_sums_give_the_whole_batch_statistics() -> None:
    """What each rank adds up over its shard (then all-reduces) is what the whole batch says."""
    batches, version = _batches(groups=9), 3
    whole = turns_from_record_batches(batches)
    expected = {**batch_stats_of(batch_counts(whole, version), 0),
                **read_stats(whole, plan_units(whole))}
    totals: dict[str, float] = {}
    for shard in split_batches(batches, 3):
        turns = turns_from_table(shard.rows)
        for key, value in {**batch_counts(turns, version),
                           **read_counts(turns, plan_units(turns))}.items():
            totals[key] = totals.get(key, 0) + value
    got = {**batch_stats_of(totals, 0), **read_stats_of(totals)}
    assert got == pytest.approx(expected, rel=1e-12)
    assert got["episodes"] == 27 and got["turns"] == len(whole)
    # the facts as a rank reading the whole batch found them before shards existed
    assert got["mean_reward"] == pytest.approx(float(whole.rewards.mean()), rel=1e-6)
    solved = sum(bool(whole.successes[rows].any()) for rows in whole.episodes().values())
    assert got["success_rate"] == pytest.approx(solved / 27)
