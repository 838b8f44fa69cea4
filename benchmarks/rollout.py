"""Rollout throughput: a RolloutWorker playing GP-L episodes vs its raw engine, same prompts.

One run measures both, side by side, so that a noisy machine still gives a stable ratio:
1. a RolloutWorker actor (tiny 5M model, vLLM) plays 5-turn GP-L episodes and streams them
   as Arrow record batches to this process, which validates every batch: worker tokens/s is
   generated tokens over the wall time from the first request to the last batch received;
2. the same prompts (every turn's prompt, from the trajectories) go straight to a fresh engine
   of the same config in an actor with the same resources, in batches of the same size:
   engine tokens/s is generated tokens over the time inside `generate`.
The ratio worker/engine is the share of the engine's speed the rollout system keeps.

Usage: .venv/bin/python benchmarks/rollout.py [--episodes 96] [--out runs/benchmarks/rollout.json]
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
import tempfile
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray
from pydantic import BaseModel, ConfigDict, Field

from envs.general_points import GPConfig
from rollout_workers.engine import EngineConfig, make_engine
from rollout_workers.engine.base import GenerationRequest, SamplingSettings
from rollout_workers.episodes.config import RolloutConfig
from rollout_workers.episodes.seeds import SeedRange
from rollout_workers.ray_runtime import actor_runtime_env, local_cluster
from rollout_workers.tiny_models.build import save_tiny_model
from rollout_workers.trajectory import validate_trajectories
from rollout_workers.worker import remote_worker


class RolloutBenchmark(BaseModel):
    """What the benchmark plays, and on which model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episodes: int = Field(96, ge=1)
    warmup_episodes: int = Field(16, ge=1)
    episodes_in_flight: int = Field(32, ge=1)
    attempts: int = Field(5, ge=1)
    max_tokens: int = Field(48, ge=1)
    temperature: float = Field(1.0, ge=0.0)
    model_size: str = "5m"
    seed: int = 0
    out: Path = Path("runs/benchmarks/rollout.json")


def main() -> None:
    bench = _parse_args()
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as model_dir, local_cluster(num_cpus=2):
        engine_config = EngineConfig(model=save_tiny_model("lm", bench.model_size, model_dir),
                                     seed=bench.seed, kv_cache_bytes=128 << 20)
        rollout_config = RolloutConfig(
            episodes_in_flight=bench.episodes_in_flight, episodes_per_batch=8,
            sampling=SamplingSettings(temperature=bench.temperature, max_tokens=bench.max_tokens,
                                      seed=bench.seed),
        )
        worker = _measure_worker(bench, engine_config, rollout_config)
        batches = _prompt_batches(worker.pop("table"), bench.episodes_in_flight)
        engine = ray.get(_measure_engine.options(runtime_env=actor_runtime_env()).remote(
            engine_config, batches, rollout_config.sampling))
    report = _report(bench, worker, engine)
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("engine_tokens_per_s", "worker_tokens_per_s", "ratio")}))
    print(f"written to {bench.out}")


def _measure_worker(bench: RolloutBenchmark, engine_config: EngineConfig,
                    rollout_config: RolloutConfig) -> dict[str, Any]:
    """Play the episodes through a RolloutWorker actor after a warm-up; consume its stream."""
    task = GPConfig(max_attempts=bench.attempts)
    actor = remote_worker("bench-0", engine_config, rollout_config)
    _consume(actor, SeedRange(task=task, start=10**6, count=bench.warmup_episodes, id_prefix="warm"))
    before = ray.get(actor.stats.remote())
    began = time.perf_counter()
    table = _consume(actor, SeedRange(task=task, count=bench.episodes, id_prefix="bench"))
    seconds = time.perf_counter() - began
    after = ray.get(actor.stats.remote())
    ray.get(actor.shutdown.remote())
    ray.kill(actor)
    tokens = int(pc.sum(pc.list_value_length(table.column("response_ids"))).as_py())
    assert tokens == after.generated_tokens - before.generated_tokens
    return {"table": table, "tokens": tokens, "seconds": seconds, "turns": table.num_rows,
            "engine_seconds": after.engine_seconds - before.engine_seconds,
            "env_seconds": after.env_seconds - before.env_seconds}


def _consume(actor: Any, source: SeedRange) -> pa.Table:
    batches = []
    for ref in actor.rollouts.remote(source):
        batch = ray.get(ref)
        validate_trajectories(batch)
        batches.append(batch)
    return pa.Table.from_batches(batches)


def _prompt_batches(table: pa.Table, size: int) -> list[list[list[int]]]:
    """Every turn's prompt, grouped as the worker's engine calls were: episodes in the order
    they started, `size` at a time, one call per turn of that group."""
    rows = table.select(["episode_id", "turn", "prompt_ids"]).to_pylist()
    order = list(dict.fromkeys(sorted((r["episode_id"] for r in rows), key=_seed_of)))
    group = {episode: index // size for index, episode in enumerate(order)}
    calls: dict[tuple[int, int], list[list[int]]] = {}
    for row in rows:
        calls.setdefault((group[row["episode_id"]], row["turn"]), []).append(row["prompt_ids"])
    return [calls[key] for key in sorted(calls)]


def _seed_of(episode_id: str) -> int:
    return int(episode_id.rsplit("-", 1)[1])


@ray.remote(num_cpus=1)
def _measure_engine(engine_config: EngineConfig, batches: list[list[list[int]]],
                    sampling: SamplingSettings) -> dict[str, float]:
    """Raw engine throughput on the given prompt batches (after one warm-up call)."""
    engine = make_engine(engine_config)
    try:
        requests = [[GenerationRequest(prompt_ids=ids) for ids in batch] for batch in batches]
        engine.generate(requests[0], sampling)
        tokens, seconds = 0, 0.0
        for index, batch in enumerate(requests):
            settings = sampling.model_copy(update={"seed": (sampling.seed or 0) + index * len(batch)})
            began = time.perf_counter()
            generations = engine.generate(batch, settings)
            seconds += time.perf_counter() - began
            tokens += sum(len(g.token_ids) for g in generations)
        return {"tokens": tokens, "seconds": seconds, "calls": len(requests)}
    finally:
        engine.shutdown()


def _report(bench: RolloutBenchmark, worker: dict[str, Any], engine: dict[str, float]) -> dict[str, Any]:
    engine_tps = engine["tokens"] / engine["seconds"]
    worker_tps = worker["tokens"] / worker["seconds"]
    return {
        "engine_tokens_per_s": round(engine_tps, 1),
        "worker_tokens_per_s": round(worker_tps, 1),
        "ratio": round(worker_tps / engine_tps, 3),
        "engine": engine,
        "worker": {k: v for k, v in worker.items() if k != "table"},
        "settings": bench.model_dump(mode="json"),
    }


def _parse_args() -> RolloutBenchmark:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, field in RolloutBenchmark.model_fields.items():
        parser.add_argument(f"--{name.replace('_', '-')}", default=field.default,
                            type=type(field.default), help=field.description)
    return RolloutBenchmark(**vars(parser.parse_args()))


if __name__ == "__main__":
    main()
