"""The comparisons a study is run for: each arm against the init at equal compute, and the
OOD gain of RL arms trained with more or fewer verification steps.

Figures and tables both take their numbers from here, so the figure and the table of a
report can never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from cluster.results.evaluations import Change, success_stderr
from cluster.study.results import StudyPoint, StudyResults

MAIN_ARMS = ("sft", "rl")
SPLIT_ORDER = ("id", "ood-rule", "ood-visual")


class Measured(NamedTuple):
    """The study's success measure of one point, as fractions."""

    value: float
    stderr: float
    per_step: bool
    """True for V-IRL's per-step accuracy (docs/protocol.md §Reported results), whose error bar is
    sqrt(p(1-p)/positions); False for episode success, sqrt(p(1-p)/n)."""


def measure(point: StudyPoint) -> Measured:
    """Per-step accuracy when the point has one (V-IRL), else episode success."""
    if point.step_accuracy is not None and point.positions:
        return Measured(point.step_accuracy,
                        success_stderr(point.step_accuracy, point.positions), True)
    return Measured(point.success, success_stderr(point.success, point.n), False)


def turn_measure(point: StudyPoint) -> Measured | None:
    """V-IRL's accuracy on turning positions alone, the only ones where the action space
    (and so the rule) matters; None for other tasks."""
    if point.turn_step_accuracy is None or not point.turn_positions:
        return None
    return Measured(point.turn_step_accuracy,
                    success_stderr(point.turn_step_accuracy, point.turn_positions), True)


def unpaired_change(a: Measured, b: Measured) -> Change:
    """b - a with the independent-samples error bar sqrt(se_a^2 + se_b^2)."""
    return Change(success=b.value - a.value, stderr=math.hypot(a.stderr, b.stderr), paired=False)


def turn_change(first: StudyPoint, last: StudyPoint) -> Change | None:
    """last - first on turning positions (unpaired: positions are not recorded one by one)."""
    a, b = turn_measure(first), turn_measure(last)
    return None if a is None or b is None else unpaired_change(a, b)


def measure_name(point: StudyPoint) -> str:
    return "per-step accuracy" if measure(point).per_step else "success"


def change(first: StudyPoint, last: StudyPoint) -> Change:
    """last - first in the study's measure. Paired when both points record the same
    episodes' outcomes: the error bar of the mean per-episode difference, tighter than the
    independent one because each instance's difficulty cancels. Per-step accuracy is not
    recorded per position, so its change is always unpaired."""
    a, b = measure(first), measure(last)
    difference = b.value - a.value
    n = first.n
    if (not a.per_step and not b.per_step and n > 1 and last.n == n
            and first.has_solved and last.has_solved):
        changed = len(set(first.solved) ^ set(last.solved))
        variance = (changed - n * difference**2) / (n - 1)
        return Change(success=difference, stderr=math.sqrt(max(variance, 0.0) / n), paired=True)
    return unpaired_change(a, b)


def split_order(splits: Iterable[str]) -> list[str]:
    """ID, rule-OOD, visual-OOD first (the paper's order), then any others by name."""
    unique = set(splits)
    known = [split for split in SPLIT_ORDER if split in unique]
    return known + sorted(unique - set(SPLIT_ORDER))


def study_splits(study: StudyResults, arms: Iterable[str] = MAIN_ARMS) -> list[str]:
    splits = set(study.init)
    for arm in arms:
        splits.update(point.split for point in study.arms.get(arm, []))
    return split_order(splits)


def arm_points(study: StudyResults, arm: str, split: str) -> list[StudyPoint]:
    """One arm's points on one split, in compute order."""
    return [point for point in study.arms.get(arm, []) if point.split == split]


def at_target(study: StudyResults, arm: str, split: str, target: float) -> StudyPoint:
    return next(p for p in arm_points(study, arm, split) if p.target_gflops == target)


def largest_shared_target(study: StudyResults, arms: Iterable[str], split: str) -> float | None:
    """The largest compute point every arm reached on this split: arms compare there, at
    equal compute, even while one is still running."""
    shared: set[float] | None = None
    for arm in arms:
        targets = {point.target_gflops for point in arm_points(study, arm, split)}
        shared = targets if shared is None else shared & targets
    return max(shared) if shared else None


@dataclass
class EqualCompute:
    """One row of "Init -> RL / SFT at equal compute"."""

    split: str
    target: float
    init: StudyPoint | None
    rl: StudyPoint
    sft: StudyPoint

    def gain(self, arm: str) -> Change | None:
        return None if self.init is None else change(self.init, getattr(self, arm))


def equal_compute(study: StudyResults) -> list[EqualCompute]:
    """Per split, init, RL and SFT at the largest compute point both arms reached."""
    rows = []
    for split in study_splits(study):
        target = largest_shared_target(study, MAIN_ARMS, split)
        if target is not None:
            rows.append(EqualCompute(split, target, study.init.get(split),
                                     at_target(study, "rl", split, target),
                                     at_target(study, "sft", split, target)))
    return rows


@dataclass
class Gain:
    """One RL arm's OOD gain over the init, for the verification-steps ablation."""

    arm: str
    steps: int
    split: str
    point: StudyPoint
    change: Change


def ablation_arms(study: StudyResults) -> list[str]:
    """RL arms with a known number of verification steps, fewest steps first; the ablation
    exists when there are at least two."""
    arms = [arm for arm in study.verification_steps if study.arms.get(arm)]
    return sorted(arms, key=lambda arm: (study.verification_steps[arm], arm))


def ablation_gains(study: StudyResults) -> dict[str, list[Gain]]:
    """Per OOD split with an init, each ablation arm's gain at the largest compute point all
    of them reached (equal compute); empty when there is no ablation."""
    arms = ablation_arms(study)
    if len(arms) < 2:
        return {}
    gains: dict[str, list[Gain]] = {}
    for split in study_splits(study, arms):
        target = largest_shared_target(study, arms, split)
        if not split.startswith("ood") or split not in study.init or target is None:
            continue
        points = [at_target(study, arm, split, target) for arm in arms]
        gains[split] = [Gain(arm, study.verification_steps[arm], split, point,
                             change(study.init[split], point))
                        for arm, point in zip(arms, points, strict=True)]
    return gains


@dataclass(frozen=True)
class Finding:
    """The study's finding on one OOD split at equal compute, as three tests: RL keeps the
    init's OOD success (at or above it within one error bar), SFT loses some of it, and RL
    beats SFT by more than twice the error bar of their difference."""

    split: str
    rl_gain: Change
    sft_gain: Change
    rl_over_sft: Change

    @property
    def rl_keeps(self) -> bool:
        return self.rl_gain.success >= -self.rl_gain.stderr

    @property
    def sft_loses(self) -> bool:
        return self.sft_gain.success < 0

    @property
    def rl_beats_sft(self) -> bool:
        return self.rl_over_sft.success > 2 * self.rl_over_sft.stderr

    @property
    def shown(self) -> bool:
        return self.rl_keeps and self.sft_loses and self.rl_beats_sft


def comparisons(rows: Iterable[EqualCompute]) -> list[Finding]:
    """The three changes (RL and SFT from the init, RL over SFT) of every split with an init;
    the finding itself is about the OOD splits (`findings`)."""
    return [Finding(row.split, change(row.init, row.rl), change(row.init, row.sft),
                    change(row.sft, row.rl))
            for row in rows if row.init is not None]


def findings(rows: Iterable[EqualCompute]) -> list[Finding]:
    """The finding's tests on every OOD split that has an init."""
    return [finding for finding in comparisons(rows) if finding.split.startswith("ood")]
