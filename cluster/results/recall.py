"""Evaluation success split by what the SFT warm start showed: recall or skill.

The study's claim is that SFT memorises and RL generalises, and a success rate alone cannot
tell the two apart. Each evaluation episode is put in the group of the most specific recall
key (`Episode.recall_keys`) it shares with an SFT demonstration; for GeneralPoints that is
the numbers in the order shown, then the same numbers in another order, for V-IRL the route
under the same rule; else 'unseen'. A policy that recalls succeeds in the first group and
hardly anywhere else; one that learned the skill succeeds in all of them.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from cluster.results.evaluations import EvalPoint
from cluster.settings.experiment import EvaluationConfig
from envs.general_points import GPConfig
from envs.registry import TaskConfig, make_episode

UNSEEN = "unseen"

Demonstrated = dict[str, set[Hashable]]
"""Recall-key name -> the keys of every SFT demonstration under that name."""


class RecallGroup(BaseModel):
    """Evaluation episodes of one group, and how many of them a policy solved."""

    model_config = ConfigDict(frozen=True)

    episodes: int
    solved: int

    @property
    def success(self) -> float:
        return self.solved / self.episodes if self.episodes else 0.0


class SFTData(BaseModel):
    """The part of the SFT settings that decides which instances it demonstrated."""

    model_config = ConfigDict(extra="ignore")

    task: TaskConfig = GPConfig()
    train_seed_start: int = 0
    train_episodes: int


def demonstrated_keys(sft: SFTData) -> Demonstrated:
    keys: Demonstrated = {}
    for seed in range(sft.train_seed_start, sft.train_seed_start + sft.train_episodes):
        for name, key in make_episode(sft.task, seed).recall_keys().items():
            keys.setdefault(name, set()).add(key)
    return keys


def recall_groups(task: TaskConfig, evaluation: EvaluationConfig, episodes: int,
                  demonstrated: Demonstrated) -> list[str]:
    """The group of evaluation episode i (seed evaluation.seed + i), for i < episodes; empty
    when the task has no recall keys."""
    groups = []
    for i in range(episodes):
        keys = make_episode(task, evaluation.seed + i).recall_keys()
        if not keys:
            return []
        groups.append(next((name for name, key in keys.items()
                            if key in demonstrated.get(name, ())), UNSEEN))
    return groups


def split_success(point: EvalPoint, groups: list[str]) -> dict[str, RecallGroup]:
    """Per group, in the order the task names them and 'unseen' last: episodes and solved."""
    solved = set(point.solved)
    counts: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        count = counts.setdefault(group, [0, 0])
        count[0] += 1
        count[1] += i in solved
    order = sorted(counts, key=lambda name: name == UNSEEN)
    return {name: RecallGroup(episodes=counts[name][0], solved=counts[name][1]) for name in order}


def recall_splits(sft: SFTData, evaluation: EvaluationConfig,
                  points: list[EvalPoint]) -> list[tuple[EvalPoint, dict[str, RecallGroup]]]:
    """Each point that can be split (its split's task has recall keys and its solved episodes
    were recorded), with its groups."""
    demonstrated = demonstrated_keys(sft)
    groups_of: dict[str, list[str]] = {}
    splits = []
    for point in points:
        task = evaluation.splits.get(point.split)
        if task is None or (point.success > 0 and not point.solved):
            continue
        if point.split not in groups_of:
            groups_of[point.split] = recall_groups(task, evaluation, point.episodes, demonstrated)
        if len(groups_of[point.split]) == point.episodes:
            splits.append((point, split_success(point, groups_of[point.split])))
    return splits


def read_run_settings(run_dir: Path) -> tuple[SFTData, EvaluationConfig] | None:
    """The SFT data and evaluation settings of a run, or None when it had no SFT phase (a
    warm start from elsewhere: what it showed is not known here)."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return None
    settings = yaml.safe_load(path.read_text()) or {}
    if not isinstance(settings, dict) or not settings.get("sft"):
        return None
    try:
        return (SFTData.model_validate(settings["sft"]),
                EvaluationConfig.model_validate(settings.get("evaluation") or {}))
    except ValidationError:
        return None
