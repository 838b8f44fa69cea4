"""Bytes each learner rank fetches per update: the whole batch (before shards) over its shard.

A real LearnerGroup (tiny 0.5M model, ZeRO-2, DeepSpeed on gloo) runs one PPO update on
GP-L-shaped episodes (5 turns, each prompt extending the previous prompt and answer, random
token ids, task instances played twice), sent as several record batches as rollout workers
send them. Before shards, every rank fetched every batch of the update: `UpdateResult.
batch_bytes` each. Now each rank fetches its shard (whole groups) and one filler turn:
`UpdateResult.shards[rank].nbytes`. `fetched_before_over_after` = the batch's bytes over the
bytes of the rank that fetched most (about the rank count: the shards are balanced by tokens,
and bytes follow tokens); `tokens_max_over_min` says how even the shards are.

Usage: DS_ACCELERATOR=cpu .venv/bin/python benchmarks/shard_bytes.py [--ranks 2] [--episodes 32]
"""
# ruff: noqa: E402  (the checkout goes on sys.path, and one thread is set, before any import)

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import random
import tempfile

import pyarrow as pa
import ray
from pydantic import BaseModel, ConfigDict, Field

from contracts.trajectory import EpisodeRecord, TurnRecord, to_record_batch
from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, PPOConfig
from learner.group import LearnerGroup
from rollout_workers.ray_runtime import local_cluster
from rollout_workers.tiny_models import save_tiny_model


class ShardBenchmark(BaseModel):
    """The update being measured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ranks: int = Field(2, ge=1)
    episodes: int = Field(32, ge=2)
    group_size: int = Field(2, ge=1)
    """Episodes per task instance (kept on one rank together)."""
    batches: int = Field(4, ge=1)
    """Record batches the episodes arrive in (one per rollout worker)."""
    turns: int = Field(5, ge=1)
    prompt_tokens: int = Field(96, ge=1)
    response_tokens: int = Field(48, ge=1)


def episodes(b: ShardBenchmark, seed: int = 0) -> list[EpisodeRecord]:
    """Sequential-revision episodes with random ids; episode e plays instance e // group_size."""
    rng = random.Random(seed)
    ids = lambda n: [rng.randrange(10, 400) for _ in range(n)]  # noqa: E731
    records = []
    for e in range(b.episodes):
        record = EpisodeRecord(f"ep-{e:04d}", "gp-l", "id", e // b.group_size)
        prompt = ids(b.prompt_tokens)
        for t in range(b.turns):
            response, last = ids(rng.randrange(1, b.response_tokens + 1)), t + 1 == b.turns
            record.turns.append(TurnRecord(
                prompt_ids=prompt, response_ids=response, response_logprobs=[-1.0] * len(response),
                policy_version=0, truncated=False, reward=5.0 if last and e % 4 == 0 else -1.0,
                done=last, success=last and e % 4 == 0, outcome="x", feedback="",
                parsed_answer="", recognition_ok=None, restart=False))
            prompt = prompt + response + ids(16)
        records.append(record)
    return records


def measure(b: ShardBenchmark, model: Path) -> dict[str, float | int]:
    records = episodes(b)
    per_batch = -(-len(records) // b.batches)
    batches: list[pa.RecordBatch] = [to_record_batch(records[i : i + per_batch], f"w{i}")
                                     for i in range(0, len(records), per_batch)]
    group = LearnerGroup(LearnerConfig(
        model=ModelConfig(path=str(model)), engine=DeepSpeedConfig(zero_stage=2, micro_batch_size=8),
        ppo=PPOConfig(ppo_epochs=1, num_minibatches=1), num_ranks=b.ranks))
    try:
        result = group.update([ray.put(batch) for batch in batches])
    finally:
        group.shutdown()
    fetched = [shard.nbytes for shard in result.shards]
    tokens = [shard.tokens for shard in result.shards]
    return {"ranks": b.ranks, "episodes": b.episodes, "batch_bytes": result.batch_bytes,
            "bytes_per_rank_after": fetched, "tokens_per_rank": tokens,
            "fetched_before_over_after": result.batch_bytes / max(fetched),
            "tokens_max_over_min": max(tokens) / max(min(tokens), 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, field in ShardBenchmark.model_fields.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=field.default)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/shard_bytes.json"))
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    b = ShardBenchmark(**args)
    with tempfile.TemporaryDirectory(prefix="rv-shard-") as scratch, \
            local_cluster(num_cpus=b.ranks):
        result = measure(b, save_tiny_model("lm", "0.5m", Path(scratch) / "model"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{b.ranks} ranks: batch {result['batch_bytes']} bytes, ranks fetched "
          f"{result['bytes_per_rank_after']}; fetched_before_over_after "
          f"{result['fetched_before_over_after']:.2f} (tokens max/min "
          f"{result['tokens_max_over_min']:.3f}) -> {out}")


if __name__ == "__main__":
    main()
