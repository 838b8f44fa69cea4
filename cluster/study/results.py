"""What a study directory's study.json holds: the evaluation points of every arm of a study.

`revisor study` writes it (one point per arm, target compute and split) and
`revisor study-report` reads it back. Both sides go through these models, so a field the
writer renames, or a value out of range, is caught where it is read and named, instead of
turning into a wrong figure. The models forbid unknown keys for the same reason.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from learner.checkpoint_manifest import write_atomically

STUDY_FILE = "study.json"
STDERR_TOLERANCE = 5e-4
"""How far a point's written stderr may be from sqrt(p(1-p)/n): rounding, not a bug."""


class StudyPoint(BaseModel):
    """Success of one policy on one split, at one point of training compute."""

    model_config = ConfigDict(extra="forbid")

    gflops: float = Field(ge=0)
    """The training GFLOPs the policy had when evaluated (>= target_gflops)."""
    target_gflops: float | None = Field(None, ge=0)
    """The compute point it stands for; None for the init."""
    split: str
    """'id', 'ood-rule', 'ood-visual', or another name (e.g. 'id-greedy')."""
    success: float = Field(ge=0, le=1)
    n: int = Field(ge=0)
    """Episodes played."""
    stderr: float = Field(ge=0)
    """sqrt(success (1 - success) / n)."""
    phase: str
    task: str
    variant: str
    temperature: float = Field(ge=0)
    success_by_turn: list[float] = Field(default_factory=list)
    mean_reward: float = 0.0
    recognition_accuracy: float | None = Field(None, ge=0, le=1)
    step_accuracy: float | None = Field(None, ge=0, le=1)
    """V-IRL's per-step accuracy, the study's success measure for V-IRL when present."""
    positions: int | None = Field(None, ge=0)
    """Route positions the per-step accuracy is over."""
    turn_step_accuracy: float | None = Field(None, ge=0, le=1)
    """V-IRL: per-step accuracy on turning positions alone (cluster/results/step_kinds.py)."""
    turn_positions: int | None = Field(None, ge=0)
    forward_step_accuracy: float | None = Field(None, ge=0, le=1)
    """V-IRL: per-step accuracy on forward positions alone."""
    forward_positions: int | None = Field(None, ge=0)
    solved: list[int] = Field(default_factory=list)
    """Indices of the solved evaluation episodes; episode i is the same instance in every
    point of the study, so two points can be compared episode by episode."""

    @model_validator(mode="after")
    def _consistent(self) -> StudyPoint:
        """A stderr or solved list that disagrees with success and n means the writer
        mixed up fields (a percentage for a fraction, another point's list)."""
        expected = math.sqrt(self.success * (1 - self.success) / self.n) if self.n else 0.0
        if abs(self.stderr - expected) > STDERR_TOLERANCE:
            raise ValueError(f"stderr {self.stderr} is not sqrt(p(1-p)/n) = {expected:.4f}")
        if any(not 0 <= i < self.n for i in self.solved) or len(set(self.solved)) < len(self.solved):
            raise ValueError(f"solved holds indices outside 0..{self.n - 1} or repeats one")
        if self.solved and len(self.solved) != round(self.success * self.n):
            raise ValueError(f"solved lists {len(self.solved)} episodes but success * n is "
                             f"{self.success * self.n:g}")
        return self

    @property
    def has_solved(self) -> bool:
        """Whether `solved` records this point's episodes (an empty list does only when
        nothing was solved)."""
        return len(self.solved) == round(self.success * self.n)


class StudyResults(BaseModel):
    """A study: an init, and for each arm its points in compute order."""

    model_config = ConfigDict(extra="forbid")

    name: str
    task: str
    parameters: int = Field(ge=0)
    compute_points: list[float]
    """Target training GFLOPs shared by all arms, ascending."""
    verification_steps: dict[str, int]
    """Verification steps each RL arm was trained with (the ablation's x-axis)."""
    init: dict[str, StudyPoint]
    """The policy before post-training, by split."""
    arms: dict[str, list[StudyPoint]]
    """Per arm, one point per (compute point, split), in compute order."""

    @model_validator(mode="after")
    def _consistent(self) -> StudyResults:
        """Points must sit at the study's compute points, so arms compare at equal compute."""
        if self.compute_points != sorted(set(self.compute_points)):
            raise ValueError("compute_points must be ascending without repeats")
        for split, point in self.init.items():
            if point.split != split or point.target_gflops is not None:
                raise ValueError(f"init.{split} must have split {split!r} and target_gflops null")
        for arm, points in self.arms.items():
            _check_arm(arm, points, self.compute_points)
        unknown = sorted(set(self.verification_steps) - set(self.arms))
        if unknown:
            raise ValueError(f"verification_steps names arms not in arms: {unknown}")
        return self


def _check_arm(arm: str, points: list[StudyPoint], compute_points: list[float]) -> None:
    seen: set[tuple[float, str]] = set()
    last = -math.inf
    for i, point in enumerate(points):
        where = f"arms.{arm}.{i}"
        if point.target_gflops not in compute_points:
            raise ValueError(f"{where}.target_gflops {point.target_gflops} is not a compute point")
        if point.gflops < point.target_gflops * (1 - 1e-9):
            raise ValueError(f"{where}.gflops {point.gflops} is below its target")
        if point.target_gflops < last or (point.target_gflops, point.split) in seen:
            raise ValueError(f"{where} is out of compute order or repeats a (compute, split)")
        last = point.target_gflops
        seen.add((point.target_gflops, point.split))


class StudyFileError(ValueError):
    """study.json is missing or does not hold a study; the message names file and field."""


def read_study(path: Path) -> StudyResults:
    """Read and validate study.json (or STUDY_DIR/study.json)."""
    path = path / STUDY_FILE if path.is_dir() else path
    if not path.is_file():
        raise StudyFileError(f"{path}: no such file")
    try:
        return StudyResults.model_validate_json(path.read_text())
    except ValidationError as error:
        raise StudyFileError(f"{path}: not a valid study\n{describe(error)}") from None


def describe(error: ValidationError) -> str:
    """One line per problem, led by the dotted path of the field (arms.rl.0.success)."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {field}: {problem['msg']}")
    return "\n".join(lines)


def write_study(path: Path, results: StudyResults) -> None:
    """Write study.json (or STUDY_DIR/study.json) atomically, so a report read while the
    study runs never sees half a file."""
    path = path / STUDY_FILE if path.is_dir() else path
    write_atomically(path, results.model_dump_json(indent=1))
