"""Where each update's wall time goes, and how busy the learner and the rollout workers were.

The driver times its own phases (waiting for episodes, publishing weights, checkpointing,
evaluating); the learner reports how long it scored and trained; the rollout workers report
their time inside the engine. An update's row in training.jsonl carries all of it, and the
same figures go to Prometheus (cluster.job.telemetry.record_update_time), so a slow run shows at
a glance whether it waits for rollouts, for the learner, or for weight syncs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

PHASES = ("wait", "score", "ppo", "export", "publish", "checkpoint", "evaluate", "other")
"""wait: for the update's episodes; score: old log-probs, values, advantages; ppo: the epochs;
export: gather and pack the weights; publish: the workers load them; other: the rest."""


class UpdateClock:
    """The phases of the update under way, and the workers' engine time seen so far."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.began = time.perf_counter()
        self._engine_seconds: dict[str, float] = {}

    def start(self) -> None:
        self.phases = {}
        self.began = time.perf_counter()

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - began)

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def learner(self, update_seconds: float, score_seconds: float, export_seconds: float) -> None:
        """The learner's own account of its update (its wall time on the ranks)."""
        self.add("score", score_seconds)
        self.add("ppo", update_seconds - score_seconds)
        self.add("export", export_seconds)

    def generated(self, workers: Sequence[Any]) -> float:
        """Engine seconds the rollout workers (their WorkerStats) spent since the last call;
        a new worker counts from zero."""
        spent = 0.0
        for stats in workers:
            spent += stats.engine_seconds - self._engine_seconds.get(stats.worker_id, 0.0)
            self._engine_seconds[stats.worker_id] = stats.engine_seconds
        return spent

    def finish(self, workers: Sequence[Any]) -> dict[str, Any]:
        """The update's timing fields: `seconds` (wall), `phases` (every PHASES entry) and
        `busy` (share of the wall time the learner trained, and the mean worker generated)."""
        wall = time.perf_counter() - self.began
        phases = {phase: self.phases.get(phase, 0.0) for phase in PHASES}
        phases["other"] = max(wall - sum(phases.values()), 0.0)
        learner = phases["score"] + phases["ppo"] + phases["export"]
        generated = self.generated(workers)
        busy = {"learner": learner / wall if wall else 0.0,
                "rollout": generated / (wall * len(workers)) if wall and workers else 0.0}
        return {"seconds": round(wall, 3),
                "phases": {k: round(v, 3) for k, v in phases.items()},
                "busy": {k: round(min(v, 1.0), 3) for k, v in busy.items()}}
