"""Facts about an update's whole batch (UpdateStats' data fields), from each rank's shard.

A rank holds only its shard of the batch (learner.shard), but training.jsonl reports the
batch. Every fact is a ratio of sums over turns or episodes (or a maximum), so each rank sums
its own, one all-reduce adds the ranks' sums up, and the ratios come out as a rank reading the
whole batch would find them (exactly for counts; rewards are summed in float64).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from learner.batch import Turns
from learner.engine import TrainEngine
from learner.packing import PackingPlan, read_counts, read_stats_of


def whole_batch_stats(engine: TrainEngine, turns: Turns, plan: PackingPlan,
                      version: int) -> dict[str, float | int]:
    """The batch's facts and read statistics (every rank must call this: it all-reduces)."""
    counts = {**batch_counts(turns, version), **read_counts(turns, plan)}
    keys = sorted(counts)
    sums = engine.all_reduce(torch.tensor([float(counts[k]) for k in keys], dtype=torch.float64))
    totals = dict(zip(keys, sums.tolist(), strict=True))
    # 0 on a rank with no turns: a lag is never negative (no turn is newer than the learner).
    lags = [version - v for v in turns.policy_versions]
    top = engine.all_reduce(torch.tensor([float(max(lags, default=0))], dtype=torch.float64),
                            op="max")
    return {**batch_stats_of(totals, int(top[0])), **read_stats_of(totals)}


def batch_counts(turns: Turns, version: int) -> dict[str, float]:
    """The sums batch_stats_of is made of, over `turns` (whole episodes)."""
    episodes = turns.episodes()
    return {"episodes": len(episodes), "turns": len(turns),
            "tokens": sum(turns.length(i) for i in range(len(turns))),
            "reward_sum": float(turns.rewards.double().sum()),
            "solved": sum(bool(turns.successes[rows].any()) for rows in episodes.values()),
            "staleness_sum": sum(version - v for v in turns.policy_versions)}


def batch_stats_of(counts: Mapping[str, float], max_staleness: int) -> dict[str, float | int]:
    """UpdateStats' batch fields from batch_counts (one rank's, or their sum over ranks)."""
    turns, episodes = int(counts["turns"]), int(counts["episodes"])
    return {"episodes": episodes, "turns": turns, "tokens": int(counts["tokens"]),
            "mean_reward": counts["reward_sum"] / turns if turns else 0.0,
            "success_rate": counts["solved"] / max(1, episodes),
            "mean_staleness": counts["staleness_sum"] / max(1, turns),
            "max_staleness": max_staleness}
