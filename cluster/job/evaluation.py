"""Fixed-seed evaluation on the rollout workers: success per split and per turn, recognition
(GP-VL cards, V-IRL-VL landmarks) and V-IRL per-step accuracy (also on turning and on
forward steps apart).

Evaluation plays the same episodes (same seeds) at every evaluation point, greedily by
default, spread over the rollout workers while they are not serving, so that the numbers of
two points or two runs differ only by the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import ray

from cluster.results.evaluations import EvalPoint
from cluster.results.step_kinds import counts_by_kind, kind_fields, position_kinds
from cluster.settings.experiment import EvaluationConfig
from contracts.engine import SamplingSettings
from contracts.episode_spec import EpisodeSpec
from contracts.tasks import TaskConfig, VIRLConfig
from verifier.virl import CORRECT as VIRL_CORRECT


def evaluation_specs(config: EvaluationConfig, split: str, task: TaskConfig) -> list[EpisodeSpec]:
    return [EpisodeSpec(episode_id=f"eval-{split}-{i}", task=task, seed=config.seed + i)
            for i in range(config.episodes)]


Play = Callable[[list[EpisodeSpec], SamplingSettings], list[pa.RecordBatch]]
"""Plays episode specs with given sampling on some workers; returns their record batches."""


def share_out(workers: list[Any]) -> Play:
    """Play specs shared evenly over `workers` (rollout worker handles), all at once. The RL
    driver uses its fleet's `evaluate` instead, which also replaces workers that fail."""

    def play(specs: list[EpisodeSpec], sampling: SamplingSettings) -> list[pa.RecordBatch]:
        shares = [specs[i :: len(workers)] for i in range(len(workers))]
        calls = [w.evaluate.remote(share, sampling)
                 for w, share in zip(workers, shares, strict=True) if share]
        return [batch for result in ray.get(calls) for batch in result]

    return play


def run_evaluation(play: Play, config: EvaluationConfig, sampling: SamplingSettings,
                   arm: str, phase: str, gflops: float) -> list[EvalPoint]:
    """One EvalPoint per split, the split's episodes played by `play`."""
    sampling = sampling.model_copy(update={
        "temperature": config.temperature, "seed": config.seed,
        **({"max_tokens": config.max_tokens} if config.max_tokens else {})})
    points = []
    for split, task in config.splits.items():
        temperature = config.split_temperatures.get(split, config.temperature)
        split_sampling = sampling.model_copy(update={"temperature": temperature})
        batches = play(evaluation_specs(config, split, task), split_sampling)
        points.append(summarise(batches, arm=arm, phase=phase, split=split, gflops=gflops,
                                per_step=isinstance(task, VIRLConfig), temperature=temperature,
                                task=task))
    return points


def describe_points(points: list[EvalPoint]) -> list[str]:
    """A line per point, as the job log shows them."""
    lines = []
    for point in points:
        per_step = "" if point.step_accuracy is None else \
            f", per-step accuracy {point.step_accuracy:.1%}" + "".join(
                f" ({kind} {accuracy:.1%})" for kind in ("turn", "forward")
                if (accuracy := getattr(point, f"{kind}_step_accuracy")) is not None)
        lines.append(f"evaluation {point.phase} {point.split}: success {point.success:.1%} "
                     f"± {point.stderr:.1%} over {point.episodes} episodes{per_step}")
    return lines


def summarise(batches: list[pa.RecordBatch], arm: str, phase: str, split: str,
              gflops: float, per_step: bool = False, temperature: float = 0.0,
              task: TaskConfig | None = None) -> EvalPoint:
    """Episode success, success within k turns, mean reward, recognition (on first attempts,
    `first_attempts`) and (for tasks walked position by position, `per_step`) per-step
    accuracy, from trajectories; with the V-IRL `task` the episodes played, per-step accuracy
    on turning and forward steps too."""
    table = pa.Table.from_batches(batches).to_pydict()
    rows = list(zip(table["episode_id"], table["turn"], table["done"], table["success"],
                    table["reward"], strict=True))
    final = {episode: (turn, success) for episode, turn, done, success, *_ in rows if done}
    episodes = len(final)
    longest = max((turn for turn, _ in final.values()), default=-1) + 1
    by_turn = [sum(success and turn < k for turn, success in final.values()) / max(episodes, 1)
               for k in range(1, longest + 1)]
    recognised = [ok for ok, first in zip(table["recognition_ok"], first_attempts(table),
                                          strict=True) if first and ok is not None]
    return EvalPoint(
        arm=arm, phase=phase, split=split, gflops=gflops, temperature=temperature,
        episodes=episodes,
        task=table["task"][0] if rows else "", variant=table["variant"][0] if rows else "",
        success=sum(success for _, success in final.values()) / max(episodes, 1),
        success_by_turn=by_turn,
        mean_reward=sum(r[4] for r in rows) / max(len(rows), 1),
        recognition_accuracy=sum(recognised) / len(recognised) if recognised else None,
        step_accuracy=step_accuracy(table) if per_step and rows else None,
        positions=sum(positions(table)) if per_step and rows else None,
        solved=sorted(episode_index(e) for e, (_, success) in final.items() if success),
        **(kind_fields(counts_by_kind(table, positions(table), position_kinds(task)))
           if per_step and rows and isinstance(task, VIRLConfig) else {}),
    )


def episode_index(episode_id: str) -> int:
    """i of an evaluation episode id `eval-<split>-<i>` (see evaluation_specs)."""
    return int(episode_id.rsplit("-", 1)[1])


def first_attempts(table: dict[str, list]) -> list[bool]:
    """Per row: whether it is the first answer at its state (an episode's opening, or the
    position a restart moved to). Recognition is measured there, "with 1 attempt" as the study
    does: a revision answers the verifier's feedback, not the picture alone (a tiny model that
    never saw feedback rewrites the cards it had read right)."""
    restarted = {(episode, turn) for episode, turn, restart in
                 zip(table["episode_id"], table["turn"], table["restart"], strict=True) if restart}
    return [turn == 0 or (episode, turn - 1) in restarted
            for episode, turn in zip(table["episode_id"], table["turn"], strict=True)]


def positions(table: dict[str, list]) -> list[bool]:
    """Per row: whether it ends a route position (see step_accuracy)."""
    return [restart or done for restart, done in zip(table["restart"], table["done"], strict=True)]


def step_accuracy(table: dict[str, list]) -> float:
    """V-IRL per-step accuracy: the share of route positions whose action was right.

    A position ends on the row that moves the walker on (`restart`: a right action, or the last
    allowed attempt) or ends the episode (`done`); it counts as right when that row's outcome is
    the verifier's `correct`, so a position solved on its second attempt is right, as in the
    route's own count (VIRLEpisode.info: solved / positions). An episode cut short by the
    context limit counts its unfinished position as wrong and has no rows for the rest.
    """
    ends = positions(table)
    right = [end and outcome == VIRL_CORRECT for end, outcome in zip(ends, table["outcome"],
                                                                     strict=True)]
    return sum(right) / max(sum(ends), 1)
