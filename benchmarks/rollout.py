"""Rollout throughput: a RolloutWorker playing GP-L episodes vs its raw engine, same prompts.

One run measures both, interleaved round by round, so that a noisy shared machine still
gives a stable ratio. Each round:
1. a RolloutWorker actor (tiny 5M model, vLLM) plays a set of 5-turn GP-L episodes and
   streams them as Arrow record batches to this process, which validates every batch;
2. a raw engine of the same config, in an actor with the same resources, generates for the
   very same prompts (every turn's prompt, read from the trajectories), grouped into the
   same engine calls and with the same sampling seeds, so it samples the same answers.
worker tokens/s = generated tokens / wall time from the first request to the last batch
received; engine tokens/s = the same tokens / time inside `generate`. `worker_over_engine`
(worker tokens/s over engine tokens/s) is the share of the engine's speed the rollout system
keeps.

Usage: .venv/bin/python benchmarks/rollout.py [--rounds 4] [--out runs/benchmarks/rollout.json]
"""
# ruff: noqa: E402  (the checkout goes on sys.path, and one thread is set, before any import)

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import tempfile
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray
from pydantic import BaseModel, ConfigDict, Field

from benchmarks.cli import parse_settings
from contracts.engine import GenerationRequest, SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.rollout_config import RolloutConfig
from contracts.tasks import GPConfig
from contracts.trajectory import validate_trajectories
from rollout_workers.engine import make_engine
from rollout_workers.episodes.seeds import SeedRange
from rollout_workers.ray_runtime import actor_runtime_env, local_cluster
from rollout_workers.tiny_models.build import save_tiny_model
from rollout_workers.worker import remote_worker


class RolloutBenchmark(BaseModel):
    """What the benchmark plays, and on which model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(4, ge=1)
    """Worker and engine take turns this many times; their times are summed."""
    episodes_per_round: int = Field(32, ge=1)
    warmup_episodes: int = Field(8, ge=1)
    episodes_in_flight: int = Field(32, ge=1)
    attempts: int = Field(5, ge=1)
    max_tokens: int = Field(48, ge=1)
    temperature: float = Field(1.0, ge=0.0)
    model_size: str = "5m"
    seed: int = 0
    out: Path = Path("runs/benchmarks/rollout.json")


@ray.remote(num_cpus=1)
class EngineReplay:
    """A raw engine that generates for recorded engine calls and times only `generate`."""

    def __init__(self, engine_config: RolloutEngineConfig, rollout_config: RolloutConfig) -> None:
        self.engine = make_engine(engine_config)
        self.config = rollout_config

    def replay(self, calls: list[list[list[int]]], first_call: int) -> dict[str, float]:
        """Call k gets the seed the worker's engine call number `first_call + k` had."""
        sampling, tokens, seconds = self.config.sampling, 0, 0.0
        for index, prompts in enumerate(calls):
            offset = (first_call + index) * self.config.episodes_in_flight
            settings = sampling.model_copy(update={"seed": sampling.seed + offset})
            requests = [GenerationRequest(prompt_ids=ids) for ids in prompts]
            began = time.perf_counter()
            generations = self.engine.generate(requests, settings)
            seconds += time.perf_counter() - began
            tokens += sum(len(g.token_ids) for g in generations)
        return {"tokens": tokens, "seconds": seconds}

    def shutdown(self) -> None:
        self.engine.shutdown()


def main() -> None:
    bench = parse_settings(RolloutBenchmark, __doc__)
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as model_dir, local_cluster(num_cpus=2):
        engine_config = RolloutEngineConfig(model=save_tiny_model("lm", bench.model_size, model_dir),
                                     seed=bench.seed, kv_cache_bytes=128 << 20)
        rollout_config = RolloutConfig(
            episodes_in_flight=bench.episodes_in_flight, episodes_per_batch=8,
            sampling=SamplingSettings(temperature=bench.temperature, max_tokens=bench.max_tokens,
                                      seed=bench.seed),
        )
        worker = remote_worker("bench-0", engine_config, rollout_config)
        replay = EngineReplay.options(runtime_env=actor_runtime_env()).remote(
            engine_config, rollout_config)
        try:
            rounds = _measure(bench, worker, replay)
        finally:
            ray.get([worker.shutdown.remote(), replay.shutdown.remote()])
    report = _report(bench, rounds)
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("engine_tokens_per_s", "worker_tokens_per_s",
                                             "worker_over_engine")}))
    print(f"written to {bench.out}")


def _measure(bench: RolloutBenchmark, worker: Any, replay: Any) -> list[dict[str, Any]]:
    """Warm both up, then alternate: the worker plays a round, the engine replays it."""
    task = GPConfig(max_attempts=bench.attempts)
    warmup = _play(worker, SeedRange(task=task, start=10**6, count=bench.warmup_episodes))
    ray.get(replay.replay.remote(_engine_calls(warmup, bench.episodes_in_flight), 0))
    rounds = []
    for index in range(bench.rounds):
        first_call = ray.get(worker.stats.remote()).engine_calls
        start = index * bench.episodes_per_round
        began = time.perf_counter()
        table = _play(worker, SeedRange(task=task, start=start, count=bench.episodes_per_round))
        seconds = time.perf_counter() - began
        calls = _engine_calls(table, bench.episodes_in_flight)
        engine = ray.get(replay.replay.remote(calls, first_call))
        tokens = pc.sum(pc.list_value_length(table.column("response_ids"))).as_py()
        rounds.append({"worker_tokens": tokens, "worker_seconds": seconds, "turns": table.num_rows,
                       "engine_tokens": engine["tokens"], "engine_seconds": engine["seconds"]})
    rounds.append({"worker_stats": ray.get(worker.stats.remote()).model_dump(mode="json")})
    return rounds


def _play(worker: Any, source: SeedRange) -> pa.Table:
    """Consume a worker's stream the way a learner does: validating every batch."""
    batches = []
    for ref in worker.rollouts.remote(source):
        batch = ray.get(ref)
        validate_trajectories(batch)
        batches.append(batch)
    return pa.Table.from_batches(batches)


def _engine_calls(table: pa.Table, size: int) -> list[list[list[int]]]:
    """Every turn's prompt, grouped as the worker's engine calls were: episodes in the order
    they started (by seed), `size` at a time, one call per turn of that group."""
    rows = table.select(["seed", "turn", "prompt_ids"]).to_pylist()
    seeds = sorted({row["seed"] for row in rows})
    group = {seed: index // size for index, seed in enumerate(seeds)}
    calls: dict[tuple[int, int], list[tuple[int, list[int]]]] = {}
    for row in rows:
        calls.setdefault((group[row["seed"]], row["turn"]), []).append((row["seed"], row["prompt_ids"]))
    return [[ids for _, ids in sorted(calls[key])] for key in sorted(calls)]


def _report(bench: RolloutBenchmark, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    measured, stats = rounds[:-1], rounds[-1]["worker_stats"]
    total = {key: sum(r[key] for r in measured) for key in measured[0]}
    engine_tps = total["engine_tokens"] / total["engine_seconds"]
    worker_tps = total["worker_tokens"] / total["worker_seconds"]
    return {
        "engine_tokens_per_s": round(engine_tps, 1),
        "worker_tokens_per_s": round(worker_tps, 1),
        "worker_over_engine": round(worker_tps / engine_tps, 3),
        "same_answers": total["engine_tokens"] == total["worker_tokens"],
        "worker_engine_busy_share": round(stats["engine_seconds"] / stats["rollout_seconds"], 3),
        "totals": total,
        "rounds": measured,
        "worker_stats": stats,
        "settings": bench.model_dump(mode="json"),
    }


if __name__ == "__main__":
    main()
