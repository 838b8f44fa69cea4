"""Asynchronous overlap: the same short RL job at max_staleness 0 and 1, episodes/s of each.

At `learner.ppo.max_staleness: 0` the loop is synchronous: the rollout workers wait while the
learner trains on their episodes and publishes the new weights, and the learner waits while
the workers play the next update's episodes. At 1 the workers play update k+1's episodes
(with the weights of update k-1 or k) while the learner trains update k, so the two overlap.
Each job runs as a user runs it (`python -m cluster.main`, embedded Ray cluster), one after
the other; its `training.jsonl` gives every update's wall time, its parts and how busy the
learner and the rollout workers were (cluster.job.update_clock). The first update of each job is
left out (engine warm-up); evaluation is off.

episodes/s = episodes / summed update wall time; `speedup` = staleness-1 episodes/s over
staleness-0 episodes/s; `speedup_ceiling` = the staleness-0 update's seconds over the same
less its seconds waiting for episodes: what overlap gives if it hides that wait entirely and
slows nothing else, the bound to read `speedup` against. The most overlap can give is (rollout + learner) / max(rollout,
learner) seconds per update: 2x when both sides take equally long and each has cores of its
own. On a 2-core machine the rollout worker, the learner rank, the driver and Ray's own
processes share two cores, so part of what overlap saves in waiting it loses in contention;
the report gives each side's busy share so that the figure can be read.

Usage: .venv/bin/python benchmarks/async_overlap.py [--updates 8] [--out runs/benchmarks/async_overlap.json]
"""
# ruff: noqa: E402  (the checkout goes on sys.path, and one thread is set, before any import)

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import json
import statistics
import subprocess
import tempfile
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from benchmarks.cli import parse_settings
from cluster.results.evaluations import read_training_log


class OverlapBenchmark(BaseModel):
    """The job both staleness settings run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    updates: int = Field(8, ge=2)
    episodes_per_update: int = Field(32, ge=1)
    model_size: str = "5m"
    attempts: int = Field(3, ge=1)
    max_tokens: int = Field(32, ge=1)
    rollout_workers: int = Field(1, ge=1)
    out: Path = Path("runs/benchmarks/async_overlap.json")


def job_settings(bench: OverlapBenchmark, run: Path, staleness: int) -> list[str]:
    """Arguments of `python -m cluster.main` for one job (the CPU demo, RL only)."""
    task = f"{{task: gp, rule: id, max_attempts: {bench.attempts}}}"
    return ["--config", str(ROOT / "configs" / "cpu_demo.yaml"), f"run_dir={run}",
            f"model={run.parent / 'model'}", f"name=overlap-{staleness}",
            f"tiny_model.size={bench.model_size}", "sft=null", f"task={task}",
            f"learner.ppo.max_staleness={staleness}", "learner.publish_every=1",
            f"training.updates={bench.updates}",
            f"training.episodes_per_update={bench.episodes_per_update}",
            "training.checkpoint_every=0", "training.eval_every=0", "training.evaluate_init=false",
            "evaluation.episodes=4", f"evaluation.splits={{id: {task}}}",
            "evaluation.split_temperatures={}",
            f"rollout.sampling.max_tokens={bench.max_tokens}",
            f"cluster.rollout_workers={bench.rollout_workers}", "cluster.address=local",
            f"cluster.num_cpus={bench.rollout_workers + 2}"]


def run_job(bench: OverlapBenchmark, root: Path, staleness: int) -> list[dict[str, Any]]:
    """One job to its end; its training.jsonl rows."""
    run = root / f"staleness-{staleness}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu",
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    log = root / f"staleness-{staleness}.log"
    with log.open("w") as out:
        code = subprocess.call([sys.executable, "-m", "cluster.main",
                                *job_settings(bench, run, staleness)],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if code:
        raise SystemExit(f"the staleness-{staleness} job failed ({code}):\n{log.read_text()[-3000:]}")
    return read_training_log(run)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Episodes/s over the updates after the first, and where their time went."""
    timed = rows[1:]
    seconds = sum(row["seconds"] for row in timed)
    parts = {part: round(sum(row["phases"][part] for row in timed) / len(timed), 3)
             for part in timed[0]["phases"]}
    return {"episodes_per_s": round(sum(row["episodes"] for row in timed) / seconds, 3),
            "seconds_per_update": round(seconds / len(timed), 3),
            "busy_learner": round(statistics.mean(row["busy"]["learner"] for row in timed), 3),
            "busy_rollout": round(statistics.mean(row["busy"]["rollout"] for row in timed), 3),
            "oldest_version_lag": max(row["step"] - 1 - row["oldest_version"] for row in timed),
            "mean_seconds_by_part": parts}


def speedup_ceiling(synchronous: dict[str, Any]) -> float:
    """Seconds per synchronous update over the same without the wait for episodes."""
    seconds = synchronous["seconds_per_update"]
    return round(seconds / (seconds - synchronous["mean_seconds_by_part"]["wait"]), 3)


def main() -> None:
    bench = parse_settings(OverlapBenchmark, __doc__)
    with tempfile.TemporaryDirectory(prefix="rv-overlap-") as tmp:
        results = {f"staleness_{s}": summarise(run_job(bench, Path(tmp), s)) for s in (0, 1)}
    report = {"speedup": round(results["staleness_1"]["episodes_per_s"]
                               / results["staleness_0"]["episodes_per_s"], 3),
              "speedup_ceiling": speedup_ceiling(results["staleness_0"]),
              **results, "settings": bench.model_dump(mode="json")}
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    print(f"written to {bench.out}")


if __name__ == "__main__":
    main()
