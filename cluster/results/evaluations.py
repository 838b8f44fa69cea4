"""What a run directory holds, and how evaluation points are written and read back.

A run directory is meant to be read by a person and by `revisor report`:
  config.yaml          the resolved experiment settings
  training.jsonl       one line per learner update (reward, success, PPO stats, tokens, GFLOPs)
  evaluations.parquet  one row per (evaluation point, task, variant), also as evaluations.json
  checkpoints/         learner checkpoints
  report/              report.md and its PNG plots
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

TRAINING_LOG = "training.jsonl"
EVALUATIONS = "evaluations.parquet"


class EvalPoint(BaseModel):
    """Success of one policy on one task variant, at one point of training compute."""

    model_config = ConfigDict(extra="forbid")

    arm: str
    """'sft' or 'rl' (or any name a user gives a run), the study's two arms."""
    phase: str
    """'init' before post-training, or 'step-N' after N updates."""
    task: str
    variant: str
    split: str
    """'id' or an OOD kind ('ood-rule', 'ood-visual')."""
    gflops: float = Field(ge=0)
    temperature: float = Field(0.0, ge=0)
    """The sampling temperature the episodes were played at (0: greedy)."""
    episodes: int = Field(ge=0)
    success: float = Field(ge=0, le=1)
    success_by_turn: list[float] = Field(default_factory=list)
    """Share of episodes solved within 1, 2, ... verification steps."""
    mean_reward: float = 0.0
    recognition_accuracy: float | None = None
    step_accuracy: float | None = None
    positions: int | None = None
    """Route positions the per-step accuracy is over (its error bar: sqrt(p(1-p)/positions),
    a lower bound, since positions of one route are not independent)."""
    turn_step_accuracy: float | None = None
    """V-IRL: per-step accuracy on the positions that want a turn (where the rule matters)."""
    turn_positions: int | None = None
    forward_step_accuracy: float | None = None
    """V-IRL: per-step accuracy on the positions that want forward() (always-forward: 100%)."""
    forward_positions: int | None = None
    solved: list[int] = Field(default_factory=list)
    """Indices of the evaluation episodes solved (episode i plays seed evaluation.seed + i):
    two points of one run play the same episodes, so they can be compared pair by pair."""

    @property
    def stderr(self) -> float:
        return success_stderr(self.success, self.episodes)


OPTIONAL_MEASURES = ("step_accuracy", "positions", "turn_step_accuracy", "turn_positions",
                     "forward_step_accuracy", "forward_positions", "recognition_accuracy")
"""EvalPoint's measures that only some tasks have (None elsewhere): summaries list them
where present."""


def success_stderr(p: float, n: int) -> float:
    """The study's error bar for a success rate: sqrt(p(1-p)/n)."""
    return math.sqrt(p * (1 - p) / n) if n else 0.0


class Change(BaseModel):
    """How much success moved between two evaluation points, with its error bar."""

    success: float
    """last - first, as a fraction."""
    stderr: float
    paired: bool
    """True when both points played the same episodes and the error bar is that of the mean
    per-episode difference (tighter, since the episodes' difficulty cancels); otherwise the
    independent-samples bar sqrt(se_first^2 + se_last^2)."""


def success_change(first: EvalPoint, last: EvalPoint) -> Change:
    change = last.success - first.success
    n = first.episodes
    if n > 1 and last.episodes == n and (first.solved or last.solved):
        before, after = set(first.solved), set(last.solved)
        differences = [(i in after) - (i in before) for i in range(n)]
        variance = (sum(d * d for d in differences) - n * change**2) / (n - 1)
        return Change(success=change, stderr=math.sqrt(max(variance, 0.0) / n), paired=True)
    return Change(success=change, stderr=math.hypot(first.stderr, last.stderr), paired=False)


def write_evaluations(run_dir: Path, points: list[EvalPoint]) -> None:
    """Write all points (replacing earlier files) as Parquet and as readable JSON."""
    import pyarrow as pa  # here: pyarrow takes a second that `revisor report --help` skips
    import pyarrow.parquet as pq

    rows = [point.model_dump() for point in points]
    pq.write_table(pa.Table.from_pylist(rows), run_dir / EVALUATIONS)
    (run_dir / "evaluations.json").write_text(json.dumps(rows, indent=1))


def read_evaluations(run_dir: Path) -> list[EvalPoint]:
    path = run_dir / EVALUATIONS
    if not path.exists():
        return []
    import pyarrow.parquet as pq

    return [EvalPoint(**row) for row in pq.read_table(path).to_pylist()]


def read_training_log(run_dir: Path) -> list[dict]:
    path = run_dir / TRAINING_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


