"""The same settings on the same machine give the same summary.json.

Two rollout workers finish episodes in whatever order the machine's load makes, so a job is
reproducible only if nothing it trains on or reports depends on that order: an episode's seed
and sampling follow from its id (and its turn), minibatches are shuffled by a seed per policy
version, and the learner sees an update's episodes in episode-id order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.jobs import run_job, small_job

EXCLUDED: set[str] = set()
"""Top-level summary fields that legitimately differ between two runs (wall-clock figures);
summary.json holds none today."""
TIMINGS = {"seconds", "phases", "busy"}
"""Fields of a training.jsonl row that time the update: the rest (losses, gradient norms,
token counts) must match too."""


def comparable(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    return {key: value for key, value in summary.items() if key not in EXCLUDED}


def training_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "training.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if key not in TIMINGS} for row in rows]


@pytest.mark.slow
def test_the_same_job_twice_gives_the_same_summary(tmp_path: Path) -> None:
    # Each worker holds at most 4 episodes in batches of 2, so both play every update's 8 and
    # their batches reach the queue in whatever order the machine makes.
    overrides = ("training.updates=2", "training.checkpoint_every=0", "cluster.rollout_workers=2",
                 "rollout.episodes_in_flight=4", "rollout.episodes_per_batch=2")
    for name in ("first", "second"):
        run_job(small_job(tmp_path / name, name, *overrides), tmp_path / f"{name}.log")
    first, second = comparable(tmp_path / "first"), comparable(tmp_path / "second")
    assert first == second, json.dumps({"first": first, "second": second}, indent=1)
    assert training_rows(tmp_path / "first") == training_rows(tmp_path / "second")
