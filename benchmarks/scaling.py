"""Rollout scaling: episodes/s of two RolloutWorkers playing side by side vs one alone.

Two real RolloutWorker actors (vLLM CPU engine, tiny model, GP-L episodes) stream their
episodes to this process as Arrow record batches, which it validates, as a learner would.
Rounds alternate: worker 0 plays `episodes` alone, then both workers play `episodes` each
at the same time. episodes/s = episodes received / wall time from the first request to the
last batch; `two_over_one` = two-worker episodes/s over one-worker episodes/s.

What to expect on a 2-core machine: at most 2.0 (one OpenMP thread per worker, one core
each), in practice about 1.5-1.9. The cores are also shared with this process (receiving
and validating batches), the raylet and GCS, each engine's own scheduling work in Python,
and the in-process verifier, so two busy workers never get two whole cores. The run also
reports the cores the worker processes really used in each phase (their CPU time over the
wall time): about 1 and 2 on a quiet machine. On a shared machine the ratio is noisy and
says little when `cores_two_workers` is far below 2 (other jobs took the second core).
Rerun on a quiet machine for a figure to quote. Takes about two minutes.

Usage: .venv/bin/python benchmarks/scaling.py [--rounds 2] [--episodes 32]
"""
# ruff: noqa: E402  (the checkout goes on sys.path, and one thread is set, before any import)

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import ray
from pydantic import BaseModel, ConfigDict, Field

from benchmarks.cli import parse_settings
from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.rollout_config import RolloutConfig
from contracts.tasks import GPConfig
from contracts.trajectory import validate_trajectories
from rollout_workers.episodes.seeds import SeedRange
from rollout_workers.ray_runtime import local_cluster
from rollout_workers.tiny_models.build import save_tiny_model
from rollout_workers.worker import remote_worker


class ScalingBenchmark(BaseModel):
    """What each worker plays per round, and on which model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(2, ge=1)
    """One worker and two workers take turns this many times; their times are summed."""
    episodes: int = Field(32, ge=1)
    """Episodes each playing worker plays per round."""
    warmup_episodes: int = Field(8, ge=1)
    episodes_in_flight: int = Field(16, ge=1)
    attempts: int = Field(3, ge=1)
    max_tokens: int = Field(32, ge=1)
    model_size: str = "5m"
    seed: int = 0
    out: Path = Path("runs/benchmarks/scaling.json")


def play(worker: Any, source: SeedRange) -> int:
    """Consume one worker's stream the way a learner does; returns the episodes received."""
    episodes = 0
    for ref in worker.rollouts.remote(source):
        batch = ray.get(ref)
        validate_trajectories(batch)
        episodes += len(set(batch.column("episode_id").to_pylist()))
    return episodes


def timed_round(workers: list[Any], task: GPConfig, start: int, count: int) -> dict[str, float]:
    """Every worker in `workers` plays `count` episodes of its own at once. `cores` is the
    CPU time the worker processes used over the wall time: how many cores they really got."""
    sources = [SeedRange(task=task, start=start + i * count, count=count)
               for i in range(len(workers))]
    processes = worker_processes()
    cpu = _cpu_seconds(processes)
    began = time.perf_counter()
    with ThreadPoolExecutor(len(workers)) as pool:
        episodes = sum(pool.map(play, workers, sources))
    seconds = time.perf_counter() - began
    return {"episodes": episodes, "seconds": seconds,
            "cores": round((_cpu_seconds(processes) - cpu) / seconds, 2)}


def worker_processes() -> list[psutil.Process]:
    """This run's RolloutWorker processes (descendants of this process: its own Ray)."""
    return [p for p in psutil.Process().children(recursive=True)
            if "RolloutWorker" in " ".join(_cmdline(p))]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def measure(bench: ScalingBenchmark, workers: list[Any]) -> dict[str, list[dict[str, float]]]:
    task = GPConfig(max_attempts=bench.attempts)
    timed_round(workers, task, 10**6, bench.warmup_episodes)
    rounds: dict[str, list[dict[str, float]]] = {"one": [], "two": []}
    for index in range(bench.rounds):
        start = index * 3 * bench.episodes
        rounds["one"].append(timed_round(workers[:1], task, start, bench.episodes))
        rounds["two"].append(timed_round(workers, task, start + bench.episodes, bench.episodes))
    return rounds


def report(bench: ScalingBenchmark, rounds: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    rate = {name: sum(r["episodes"] for r in runs) / sum(r["seconds"] for r in runs)
            for name, runs in rounds.items()}
    cores = {name: round(statistics.mean(r["cores"] for r in runs), 2)
             for name, runs in rounds.items()}
    return {"one_worker_episodes_per_s": round(rate["one"], 3),
            "two_workers_episodes_per_s": round(rate["two"], 3),
            "two_over_one": round(rate["two"] / rate["one"], 3),
            "cores_one_worker": cores["one"], "cores_two_workers": cores["two"],
            "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 1),
            "rounds": rounds,
            "settings": bench.model_dump(mode="json")}


def main() -> None:
    bench = parse_settings(ScalingBenchmark, __doc__)
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as model_dir, local_cluster(num_cpus=2):
        engine = RolloutEngineConfig(model=save_tiny_model("lm", bench.model_size, model_dir),
                              seed=bench.seed, kv_cache_bytes=64 << 20, max_model_len=1024)
        rollout = RolloutConfig(
            episodes_in_flight=bench.episodes_in_flight, episodes_per_batch=8,
            sampling=SamplingSettings(temperature=1.0, max_tokens=bench.max_tokens,
                                      seed=bench.seed))
        workers = [remote_worker(f"scale-{i}", engine, rollout) for i in range(2)]
        try:
            rounds = measure(bench, workers)
        finally:
            ray.get([w.shutdown.remote() for w in workers])
            for worker in workers:
                ray.kill(worker)
    result = report(bench, rounds)
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("one_worker_episodes_per_s",
                                             "two_workers_episodes_per_s", "two_over_one",
                                             "cores_one_worker", "cores_two_workers")}))
    print(f"written to {bench.out}")


if __name__ == "__main__":
    main()
