"""The settings of a study: one experiment, its init, its compute points and its arms.

A study file names (or holds) an experiment's settings, the same ones `python -m cluster.main`
takes, and adds what only a study has: which checkpoint both arms start from, how many
compute points each arm is evaluated at, and the verification-step ablation. Overrides reach
the experiment as `experiment.dotted.key=value`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import (
    SettingsError,
    apply_override,
    describe,
    load_settings,
    read_yaml,
)
from contracts.tasks import GPConfig, TaskConfig, VIRLConfig

STUDY_SETTINGS = "study.yaml"


class InitSettings(BaseModel):
    """The checkpoint both arms start from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    checkpoint: str | None = None
    """A checkpoint to start from; None: the study's SFT run (experiment.sft, from
    experiment.model) saves one after `sft_steps` and both arms start there."""
    sft_steps: int = Field(100, ge=1)
    """The SFT step whose checkpoint is the init. Pick it early: RL cannot rescue an
    over-trained SFT checkpoint (docs/protocol.md §Hyper-parameters)."""
    tokens: int = Field(0, ge=0)
    """Tokens trained on behind `checkpoint` (D_init of the compute accounting)."""


class StudyConfig(BaseModel):
    """Both arms of the study from one init, evaluated at matched training compute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("study", pattern=r"^[A-Za-z0-9._-]+$")
    study_dir: Path = Path("runs/study")
    experiment: ExperimentConfig
    """Task, model, engines, learner and PPO (the RL arms), SFT (the init and the SFT arm:
    one SFT run of experiment.sft.steps), evaluation and cluster. Its run_dir and arm are
    set per arm by the study."""
    init: InitSettings = InitSettings()
    compute_points: int = Field(3, ge=1)
    """Evaluation points per arm. The SFT arm's are spaced evenly in steps from the init to
    the end of its run; every RL arm is evaluated at the first update at or past each of
    their training GFLOPs, so the arms are compared at equal compute."""
    seed: int = Field(0, ge=0)
    """Added to every seed that shapes the result (SEEDED: the tiny model's init, the base's
    pretraining order, SFT's order, the learner's and the sampler's), so `seed=1`, `seed=2`
    rerun the same study as other seeds. Evaluation and training episodes stay the same, so
    seeds are compared on the same instances (`revisor study-seeds`)."""
    verification_steps: list[Annotated[int, Field(ge=1, le=20)]] = Field(default_factory=list)
    """The verification-step ablation: one more RL arm per count (the task's attempts per
    answer), from the same init, evaluated alike; [] for none."""

    @model_validator(mode="after")
    def _runnable(self) -> StudyConfig:
        sft = self.experiment.sft
        if sft is None:
            raise ValueError("experiment.sft: a study needs SFT settings (its SFT arm, and its "
                             "init when init.checkpoint is not given)")
        if self.init.checkpoint is None and self.init.sft_steps >= sft.steps:
            raise ValueError(f"init.sft_steps ({self.init.sft_steps}) must be below "
                             f"experiment.sft.steps ({sft.steps}): the SFT arm continues the "
                             "run the init is taken from")
        if len(set(self.verification_steps)) != len(self.verification_steps):
            raise ValueError(f"verification_steps repeats a count: {self.verification_steps}")
        return self

    @property
    def first_arm_step(self) -> int:
        """The SFT run's step the SFT arm starts from."""
        return 0 if self.init.checkpoint else self.init.sft_steps

    def point_steps(self) -> list[int]:
        """The SFT arm's evaluation steps, evenly spaced after its start."""
        start, end = self.first_arm_step, self.experiment.sft.steps
        steps = [start + round(i * (end - start) / self.compute_points)
                 for i in range(1, self.compute_points + 1)]
        if len(set(steps)) != len(steps) or steps[0] <= start:
            raise SettingsError(f"compute_points ({self.compute_points}) is more than the SFT "
                                f"arm's {end - start} steps can space apart")
        return steps

    def rl_arms(self) -> dict[str, int]:
        """Arm name -> verification steps: 'rl' (the task as configured) and the ablation's
        other counts (the count 'rl' has is 'rl' itself, not trained twice)."""
        main = verification_steps(self.experiment.task)
        arms = {"rl": main}
        arms.update({f"rl-steps-{k}": k for k in self.verification_steps if k != main})
        return arms


def verification_steps(task: TaskConfig) -> int:
    """How many answers the verifier checks per state: GeneralPoints' attempts per hand,
    V-IRL's attempts per route position."""
    if isinstance(task, GPConfig):
        return task.max_attempts
    if isinstance(task, VIRLConfig):
        return task.max_attempts_per_position
    raise SettingsError(f"task {task.task!r}: the study does not know its verification steps")


def with_verification_steps(task: TaskConfig, steps: int) -> TaskConfig:
    field = "max_attempts" if isinstance(task, GPConfig) else "max_attempts_per_position"
    return task.model_copy(update={field: steps})


def load_study(path: Path, overrides: list[str] = ()) -> StudyConfig:
    """A study file plus overrides, validated. Its `experiment` is a mapping of settings, or
    the path of an experiment file (relative to the working directory or to the study file),
    or a mapping with `from: PATH` and the settings that differ from that file's."""
    data = read_yaml(path)
    experiment = data.get("experiment")
    if isinstance(experiment, str):
        experiment = {"from": experiment}
    if isinstance(experiment, dict) and "from" in experiment:
        changes = {k: v for k, v in experiment.items() if k != "from"}
        base = read_yaml(_find(Path(experiment["from"]), Path(path).parent))
        data["experiment"] = deep_merge(base, changes)
    for assignment in overrides:
        apply_override(data, assignment)
    study = validate_study(data, str(path), overrides)
    if study.seed:
        # Shifted from the validated values, so a seed the file leaves at its default moves
        # too; validated again, so what depends on the seeds (the base's cache path) follows.
        for assignment in seeded(study.experiment, study.seed):
            apply_override(data, assignment)
        study = validate_study(data, str(path), overrides)
    return study


SEEDED = ("tiny_model.seed", "pretrain.seed", "sft.seed", "learner.seed",
          "rollout.sampling.seed")
"""The experiment's seeds a study's `seed` shifts (a section the experiment lacks is skipped)."""


def seeded(experiment: ExperimentConfig, seed: int) -> list[str]:
    """Overrides that add `seed` to each of the experiment's SEEDED seeds."""
    assignments = []
    for path in SEEDED:
        *sections, leaf = path.split(".")
        node: Any = experiment
        for section in sections:
            node = getattr(node, section)
        if node is not None:
            assignments.append(f"experiment.{path}={getattr(node, leaf) + seed}")
    return assignments


def validate_study(data: dict[str, Any], source: str, overrides: list[str] = ()) -> StudyConfig:
    from pydantic import ValidationError

    try:
        return StudyConfig.model_validate(data)
    except ValidationError as error:
        raise SettingsError(describe(error, source=source, overrides=overrides,
                                     model=StudyConfig)) from None


def _find(path: Path, beside: Path) -> Path:
    if path.is_absolute() or path.exists():
        return path
    return beside / path


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` laid over it, mappings merged key by key."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = deep_merge(merged[key], value)
        merged[key] = value
    return merged


def load_experiment(path: Path, overrides: list[str]) -> ExperimentConfig:
    """An experiment file, or a study file (`revisor study`): its experiment (what `revisor
    plan` and `revisor pretrain` read)."""
    if "experiment" in read_yaml(path):
        return load_study(path, overrides).experiment
    return load_settings(ExperimentConfig, path, overrides)
