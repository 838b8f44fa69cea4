"""`revisor study`: the study as one command, both arms from one init at matched compute.

    revisor study --config configs/study/cpu-gp-l.yaml [experiment.key=value ...]
    revisor study --resume STUDY_DIR          # redoes nothing it finished
    ray job submit ... -- revisor study --config ...

One SFT run (experiment.sft, from experiment.model) saves the init after init.sft_steps and
goes on: its later checkpoints are the SFT arm, evaluated at `compute_points` steps. Their
training GFLOPs (real token counts, cluster.results.compute) are the study's compute points: every RL
arm (PPO with sequential revision from the init; one per verification-step count of the
ablation) is evaluated at the first update at or past each. A study directory holds:

  study.yaml              the resolved settings
  sft/                    the SFT run: its checkpoints (sft/step-N) and run.json once done
  init/points.json        the init's evaluation
  arms/sft/step-N.json    the evaluation of each SFT-arm checkpoint
  arms/<rl arm>/          each RL arm's run directory (points.json once done)
  study.json, report/     the results and their figures (cluster.study.report)

Each of those files is written when its stage has finished, so a resumed study redoes
nothing it finished; an RL arm stopped half-way resumes from its last checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import accumulate
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console

from cluster.job.evaluation import describe_points
from cluster.job.phases import LogFollower, evaluate_model, rl_phase
from cluster.job.resources import ensure_resources, rl_requests
from cluster.job.run import ensure_model, warn_answer_room
from cluster.job.runtime import ray_cluster
from cluster.results.compute import TokenCounts, training_gflops
from cluster.results.evaluations import EvalPoint
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError, dump_settings
from cluster.settings.model_checks import check_against_model, check_model_source
from cluster.settings.study import (
    STUDY_SETTINGS,
    StudyConfig,
    with_verification_steps,
)
from cluster.study.report import write_study_report
from cluster.study.results import StudyResults, write_study
from learner.checkpoint_manifest import write_atomically
from learner.group import run_sft_on_ranks
from learner.model import count_parameters
from learner.sft import PROGRESS_LOG

console = Console()
STUDY_RESULTS = "study.json"


class SFTRun(BaseModel):
    """The finished SFT run: its checkpoints and the tokens trained on up to each."""

    checkpoints: dict[int, str]
    tokens: dict[int, int]
    """Step -> tokens through the model up to and including that step (all ranks)."""


class Study:
    """One study directory and the stages that fill it."""

    def __init__(self, config: StudyConfig, parameters: int) -> None:
        self.config, self.parameters = config, parameters
        self.dir = Path(config.study_dir)
        self.experiment = config.experiment

    def gflops(self, tokens: int) -> float:
        return training_gflops(self.parameters, TokenCounts(init=tokens))

    def sft_run(self) -> SFTRun:
        """The SFT run from which the init and the SFT arm's checkpoints come."""
        done = self.dir / "sft" / "run.json"
        if done.exists():
            return SFTRun.model_validate_json(done.read_text())
        c = self.config
        start = c.init.checkpoint or self.experiment.model
        steps = sorted(set(c.point_steps()) | ({c.init.sft_steps} if not c.init.checkpoint else set()))
        sft = self.experiment.sft.model_copy(update={
            "output_dir": self.dir / "sft", "checkpoint_every": 0, "checkpoint_steps": steps,
            "model": self.experiment.sft.model.model_copy(update={"path": start})})
        (sft.output_dir / PROGRESS_LOG).unlink(missing_ok=True)
        console.print(f"SFT run: {sft.steps} steps of {sft.batch_size} demonstrations from "
                      f"{start}; checkpoints after steps {steps}")
        learner = self.experiment.learner
        result = run_sft_on_ranks(sft, learner.num_ranks, learner.cpus_per_rank,
                                  learner.gpus_per_rank, metrics=self.experiment.metrics,
                                  on_progress=LogFollower(sft.output_dir / PROGRESS_LOG),
                                  resources=self.experiment.cluster.learner_resources)
        cumulative = list(accumulate(step.tokens for step in result.steps))
        checkpoints = {int(Path(path).name.removeprefix("step-")): path
                       for path in result.checkpoints}
        run = SFTRun(checkpoints=checkpoints, tokens={s: cumulative[s - 1] for s in checkpoints})
        write_atomically(done, run.model_dump_json(indent=1))
        return run

    def init_model(self, run: SFTRun) -> tuple[str, int]:
        """The init checkpoint and the tokens trained on to reach it."""
        init = self.config.init
        if init.checkpoint:
            return init.checkpoint, init.tokens
        return run.checkpoints[init.sft_steps], init.tokens + run.tokens[init.sft_steps]

    def evaluate(self, path: Path, model: str, phase: str, tokens: int, arm: str) -> list[EvalPoint]:
        """A checkpoint's evaluation on every split, done once."""
        def run() -> list[EvalPoint]:
            console.print(f"evaluating {arm} {phase} ({model})")
            points = evaluate_model(self.experiment, model, phase, self.gflops(tokens), arm=arm)
            for line in describe_points(points):
                console.print(line)
            return points

        return once(path, run)

    def sft_arm(self, run: SFTRun) -> None:
        """Each SFT-arm checkpoint's evaluation, done once (study.json reads them back)."""
        for step in self.config.point_steps():
            tokens = self.config.init.tokens + run.tokens[step]
            self.evaluate(self.dir / "arms" / "sft" / f"step-{step}.json",
                          run.checkpoints[step], f"step-{step}", tokens, "sft")

    def rl_arm(self, name: str, steps: int, init: tuple[str, int],
               targets: list[float]) -> list[EvalPoint]:
        """PPO from the init until every compute point is evaluated (resumed if stopped)."""
        config = self.rl_settings(name, steps, init[0], targets)
        run_dir = Path(config.run_dir)

        def run() -> list[EvalPoint]:
            resume = (run_dir / "checkpoints").exists()
            run_dir.mkdir(parents=True, exist_ok=True)
            dump_settings(config, run_dir / "config.yaml")
            console.print(f"RL arm {name} ({steps} verification steps)"
                          + (": resumed" if resume else ""))
            outcome = rl_phase(config, self.parameters, TokenCounts(init=init[1]), resume)
            reached = training_gflops(self.parameters, outcome.tokens)
            if reached < targets[-1]:
                console.print(f"[bold red]RL arm {name} stopped at training.updates "
                              f"({config.training.updates}) at {reached:.4g} GFLOPs, short of the "
                              f"compute point {targets[-1]:.4g}: raise experiment.training."
                              "updates[/bold red]")
            return [p.model_copy(update={"arm": name}) for p in outcome.evaluations]

        return once(run_dir / "points.json", run)

    def rl_settings(self, name: str, steps: int, model: str,
                    targets: list[float]) -> ExperimentConfig:
        data = self.experiment.model_dump()
        data.update(name=f"{self.config.name}-{name}", run_dir=self.dir / "arms" / name,
                    arm="rl", model=model, sft=None,
                    task=with_verification_steps(self.experiment.task, steps).model_dump())
        data["training"].update(eval_at_gflops=targets, evaluate_init=False)
        return ExperimentConfig.model_validate(data)


def once(path: Path, make: Callable[[], list[EvalPoint]]) -> list[EvalPoint]:
    """The points stored at `path`, or made and stored there (the study's resume unit)."""
    if path.exists():
        return read_points(path)
    points = make()
    write_atomically(path, json.dumps([p.model_dump() for p in points], indent=1))
    return points


def run_study(config: StudyConfig, resume: bool = False, only: list[str] | None = None) -> dict:
    """Run (or finish) the study; returns what STUDY_DIR/study.json holds."""
    arms = check_arms(config, only)
    needs_sft_run_done(config, only)
    experiment = config.experiment
    if config.init.checkpoint:
        experiment = experiment.model_validate({**experiment.model_dump(),
                                                "model": config.init.checkpoint})
    check_model_source(experiment)  # before the study directory is written
    prepare_study_dir(config, resume)
    ensure_model(experiment)
    check_against_model(experiment)
    warn_answer_room(experiment)
    study = Study(config, count_parameters(experiment.learner.model))
    with ray_cluster(experiment.cluster):
        ensure_resources(rl_requests(experiment), experiment)  # the SFT run uses the same ranks
        run = study.sft_run()
        init = study.init_model(run)
        study.evaluate(study.dir / "init" / "points.json", init[0], "init", init[1], "init")
        if "sft" in arms:
            study.sft_arm(run)
        targets = compute_points(study, run)
        write_study_results(study, targets)
        for name, steps in config.rl_arms().items():
            if name in arms:
                study.rl_arm(name, steps, init, targets)
                write_study_results(study, targets)
    return write_study_results(study, targets)


def check_arms(config: StudyConfig, only: list[str] | None) -> list[str]:
    known = ["sft", *config.rl_arms()]
    unknown = sorted(set(only or []) - set(known))
    if unknown:
        raise SettingsError(f"--arms names arms the study does not have: {', '.join(unknown)} "
                            f"(its arms: {', '.join(known)})")
    return list(only) if only else known


def needs_sft_run_done(config: StudyConfig, only: list[str] | None) -> None:
    """Every arm needs the SFT run (for the init and the compute points). Arms side by side
    run as separate jobs given `--arms` without 'sft': those must find it done rather than
    each start it."""
    done = Path(config.study_dir) / "sft" / "run.json"
    if only and "sft" not in only and not done.exists():
        raise SettingsError(f"{config.study_dir}: the study's SFT run is not done yet; run the 'sft' "
                            "arm first (--arms sft), then the other arms side by side")


def compute_points(study: Study, run: SFTRun) -> list[float]:
    """The study's compute points: the training GFLOPs of the SFT arm's checkpoints."""
    tokens = study.config.init.tokens
    return [study.gflops(tokens + run.tokens[step]) for step in study.config.point_steps()]


def prepare_study_dir(config: StudyConfig, resume: bool) -> None:
    path = Path(config.study_dir)
    if not resume and (path / STUDY_SETTINGS).exists():
        raise SettingsError(f"study_dir {path} already holds a study; pass --resume {path} to "
                            "finish it or choose another study_dir")
    path.mkdir(parents=True, exist_ok=True)
    dump_settings(config, path / STUDY_SETTINGS)


def write_study_results(study: Study, targets: list[float]) -> dict:
    """STUDY_DIR/study.json from every stage finished so far, and its report."""
    c, arms = study.config, {}
    sft = [read_points(study.dir / "arms" / "sft" / f"step-{step}.json")
           for step in c.point_steps()]
    arms["sft"] = [study_point(p, target) for target, points in zip(targets, sft, strict=True)
                   for p in points]
    for name in c.rl_arms():
        points = read_points(study.dir / "arms" / name / "points.json")
        arms[name] = [study_point(p, target) for target, p in matched(points, targets)]
    init = read_points(study.dir / "init" / "points.json")
    arms = {name: points for name, points in arms.items() if points}
    results = StudyResults(
        name=c.name, task=c.experiment.task.task, parameters=study.parameters,
        compute_points=targets, init={p.split: study_point(p, None) for p in init}, arms=arms,
        verification_steps={name: k for name, k in c.rl_arms().items() if name in arms})
    write_study(study.dir / STUDY_RESULTS, results)
    if init:
        console.print(f"[bold]study report:[/bold] {write_study_report(study.dir)}")
    return results.model_dump(mode="json")


def study_point(point: EvalPoint, target: float | None) -> dict:
    """A point as study.json holds it: its split's numbers, where it was taken (`gflops`)
    and the compute point it stands for (`target_gflops`; None for the init)."""
    row = point.model_dump(exclude={"arm", "episodes"})
    return {**row, "target_gflops": target, "n": point.episodes, "stderr": point.stderr}


def read_points(path: Path) -> list[EvalPoint]:
    return [EvalPoint(**row) for row in json.loads(path.read_text())] if path.exists() else []


def matched(points: list[EvalPoint], targets: list[float]) -> list[tuple[float, EvalPoint]]:
    """(target, point) for each target and split: the first evaluation at or past the target
    (an RL update can pass two targets at once; then one evaluation stands for both)."""
    pairs = []
    for target in targets:
        for split in dict.fromkeys(p.split for p in points):
            reached = [p for p in points if p.split == split and p.gflops >= target * (1 - 1e-9)]
            if reached:
                pairs.append((target, min(reached, key=lambda p: p.gflops)))
    return pairs
