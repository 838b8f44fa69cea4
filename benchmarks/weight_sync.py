"""Weight sync: seconds per weight publication on the CPU paths vs one memory copy of its bytes.

A publication is what the driver does after an update, with the real pieces on a private
local Ray cluster, for each CPU transport (weight_transport):
`LearnerGroup.publish()` (rank 0 gathers the state dict straight into the buffers it packs it
in, one per dtype, kept from the previous publication; object_store returns them into the
object store, shared_memory keeps them in a shared-memory segment), then the transport's
`deliver`: `RolloutWorker.receive_weights` on every worker (the buffers are mapped from the
object store or the segment, viewed as tensors without a copy and loaded into the worker's
vLLM CPU engine, whose prefix cache is reset).

For each model the run reports, medians over `publications` after one warm-up:
- sync_s: the whole publication, learner export to the last worker serving the weights;
- breakdown: publish_s (gather + pack, and the object-store put where there is one:
  `LearnerGroup.publish`), transfer_s (the worker call minus the engine load: map, unpack,
  call overhead) and load_s (the engine's own `update_weights`: vLLM reload + cache resets);
- copy_limit_s: the best of several NumPy copies of a buffer of the same size, measured in
  this run: the time one memcpy of the publication takes on this machine;
- sync_over_copy = sync_s / copy_limit_s: how many memory copies of its bytes a publication
  costs (1.0 would be a sync as fast as copying the weights once; the object-store path copies
  them three times - into the packed buffers, into the object store, into the engine - the
  shared-memory path twice, and vLLM's CPU engine repacks every linear layer's weights for
  oneDNN on each load, so expect more);
- own_over_copy: the same for Revisor's own part, publish_s + transfer_s (the engine's
  reload left out), each publication's over the best of 3 copies timed just before it (the
  machine's load moves the bandwidth), median over publications. Its floor: one copy on
  shared_memory (the gather into the kept segment), two on object_store (that, and Ray's
  copy into the object store).

Usage: DS_ACCELERATOR=cpu .venv/bin/python benchmarks/weight_sync.py [--sizes 0.5m,50m]
       [--publications 5] [--weight_syncs object_store,shared_memory]
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
from typing import Any

import numpy as np
import ray
from pydantic import BaseModel, ConfigDict, Field

from benchmarks.cli import parse_settings
from contracts.engine_config import RolloutEngineConfig
from contracts.rollout_config import RolloutConfig
from learner.config import LearnerConfig, ModelConfig
from learner.group import LearnerGroup
from rollout_workers.ray_runtime import local_cluster
from rollout_workers.tiny_models.build import save_tiny_model
from rollout_workers.worker import remote_worker


class WeightSyncBenchmark(BaseModel):
    """Which models, how many workers, how many publications."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sizes: str = "0.5m,50m"
    """Tiny model presets (rollout_workers.tiny_models), comma-separated."""
    weight_syncs: str = "object_store,shared_memory"
    """Transports measured (learner.weight_sync values), comma-separated."""
    publications: int = Field(5, ge=1)
    """Timed publications per model (after one warm-up); medians are reported."""
    workers: int = Field(1, ge=1)
    """Rollout workers receiving each publication (each needs a CPU of the local cluster)."""
    copies: int = Field(7, ge=1)
    """Memory copies timed for the bandwidth; the fastest counts."""
    out: Path = Path("runs/benchmarks/weight_sync.json")


class CopyClock:
    """One memory copy of a publication's bytes, timed whenever asked: on a shared machine
    the bandwidth moves with the load, so each publication is compared with copies timed just
    before it."""

    def __init__(self, num_bytes: int) -> None:
        self.source = np.ones(num_bytes, dtype=np.uint8)
        self.target = np.zeros_like(self.source)  # both touched: page faults are not timed

    def best(self, copies: int) -> float:
        """The fastest of `copies` copies of the source into the target."""
        best = float("inf")
        for _ in range(copies):
            began = time.perf_counter()
            np.copyto(self.target, self.source)
            best = min(best, time.perf_counter() - began)
        return best


def copy_seconds(num_bytes: int, copies: int) -> float:
    """The fastest of `copies` copies of a `num_bytes` buffer into another."""
    return CopyClock(num_bytes).best(copies)


def publish_once(learner: LearnerGroup, workers: list[Any]) -> dict[str, float]:
    """One publication as the driver makes it (the fleet's `deliver`), timed in its parts."""
    before = _load_seconds(workers)
    members = {str(index): worker for index, worker in enumerate(workers)}
    began = time.perf_counter()
    publication = learner.publish()
    published = time.perf_counter()
    learner.transport.deliver(publication, members, lambda method, *args: _call_all(
        members, method, *args))
    done = time.perf_counter()
    load = max(after - b for after, b in zip(_load_seconds(workers), before, strict=True))
    return {"sync_s": done - began, "publish_s": published - began,
            "transfer_s": done - published - load, "load_s": load,
            "bytes": publication.num_bytes, "tensors": publication.num_tensors}


def _call_all(members: dict[str, Any], method: str, *args: Any) -> dict[str, Any]:
    results = ray.get([getattr(w, method).remote(*args) for w in members.values()])
    return dict(zip(members, results, strict=True))


def _load_seconds(workers: list[Any]) -> list[float]:
    return [s.engine.weight_update_seconds for s in ray.get([w.stats.remote() for w in workers])]


def measure_model(bench: WeightSyncBenchmark, size: str, weight_sync: str, scratch: Path
                  ) -> dict[str, Any]:
    path = scratch / size
    if not path.exists():
        path = save_tiny_model("lm", size, path)
    learner = LearnerGroup(LearnerConfig(model=ModelConfig(path=str(path)),
                                         weight_sync=weight_sync))
    engine = RolloutEngineConfig(model=path, kv_cache_bytes=64 << 20, max_model_len=512)
    workers = [remote_worker(f"sync-{size}-{i}", engine, RolloutConfig(),
                             weight_sync=learner.transport.kind)
               for i in range(bench.workers)]
    try:
        clock = CopyClock(publish_once(learner, workers)["bytes"])  # warm-up: first load
        runs = []
        for _ in range(bench.publications):
            copy_s = clock.best(3)
            runs.append({**publish_once(learner, workers), "copy_s": copy_s})
        del clock
    finally:
        ray.get([w.shutdown.remote() for w in workers])
        for worker in workers:
            ray.kill(worker)
        learner.shutdown()
    num_bytes = runs[0]["bytes"]
    limit = copy_seconds(num_bytes, bench.copies)
    median = {key: statistics.median(r[key] for r in runs)
              for key in ("sync_s", "publish_s", "transfer_s", "load_s")}
    return {
        "model": size, "weight_sync": weight_sync, "bytes": num_bytes, "tensors": runs[0]["tensors"],
        "workers": bench.workers, "sync_s": round(median["sync_s"], 4),
        "copy_limit_s": round(limit, 5), "copy_gb_per_s": round(num_bytes / limit / 1e9, 2),
        "sync_over_copy": round(median["sync_s"] / limit, 1),
        "own_over_copy": round(statistics.median(
            (r["publish_s"] + r["transfer_s"]) / r["copy_s"] for r in runs), 2),
        "breakdown": {key: round(value, 4) for key, value in median.items() if key != "sync_s"},
        "sync_s_all": [round(r["sync_s"], 4) for r in runs],
    }


def main() -> None:
    bench = parse_settings(WeightSyncBenchmark, __doc__)
    # One CPU for the learner rank and one per worker.
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as scratch, \
            local_cluster(num_cpus=1 + bench.workers):
        results = [measure_model(bench, size.strip(), sync.strip(), Path(scratch))
                   for size in bench.sizes.split(",") for sync in bench.weight_syncs.split(",")]
    report = {"models": results, "settings": bench.model_dump(mode="json")}
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(json.dumps(report, indent=2) + "\n")
    for r in results:
        print(json.dumps({k: r[k] for k in ("model", "weight_sync", "bytes", "sync_s",
                                             "copy_limit_s", "sync_over_copy", "own_over_copy",
                                             "breakdown")}))
    print(f"written to {bench.out}")


if __name__ == "__main__":
    main()
