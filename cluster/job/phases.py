"""The phases of a job: SFT (warm start or the SFT arm) and RL."""

from __future__ import annotations

from pathlib import Path

import ray
from pydantic import BaseModel
from rich.console import Console

from cluster.job.driver import RLDriver, RLOutcome
from cluster.job.evaluation import run_evaluation, share_out
from cluster.results.compute import TokenCounts, training_gflops
from cluster.results.evaluations import EvalPoint
from cluster.settings.experiment import ExperimentConfig
from learner.group import run_sft_on_ranks
from learner.sft import PROGRESS_LOG
from rollout_workers.worker import remote_worker

console = Console()


class SFTOutcome(BaseModel):
    checkpoint: str
    tokens: TokenCounts
    evaluations: list[EvalPoint]


def sft_phase(config: ExperimentConfig, parameters: int) -> SFTOutcome:
    """SFT on expert answers; evaluates the SFT arm before and after when it is the arm."""
    sft = config.sft.model_copy(update={"output_dir": Path(config.run_dir) / "sft"})
    evaluations = []
    if config.arm == "sft":
        evaluations += evaluate_model(config, config.model, "init", 0.0)
    learner = config.learner
    result = run_sft_on_ranks(sft, learner.num_ranks, learner.cpus_per_rank, learner.gpus_per_rank,
                              metrics=config.metrics,
                              on_progress=LogFollower(sft.output_dir / PROGRESS_LOG))
    checkpoint = result.checkpoints[-1]
    tokens = TokenCounts(sft=sum(step.tokens for step in result.steps))
    if config.arm == "sft":
        gflops = training_gflops(parameters, tokens)
        evaluations += evaluate_model(config, checkpoint, f"step-{sft.steps}", gflops)
    return SFTOutcome(checkpoint=checkpoint, tokens=tokens, evaluations=evaluations)


class LogFollower:
    """Prints the lines added to a file since the last call (the SFT ranks' progress)."""

    def __init__(self, path: Path) -> None:
        self.path, self.printed = path, 0

    def __call__(self) -> None:
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines()
        for line in lines[self.printed:]:
            console.print(line)
        self.printed = len(lines)


def rl_phase(config: ExperimentConfig, parameters: int, tokens: TokenCounts,
             resume: bool) -> RLOutcome:
    driver = RLDriver(config, parameters, tokens, resume=resume)
    try:
        return driver.run()
    finally:
        driver.shutdown()


def evaluate_model(config: ExperimentConfig, model: str, phase: str, gflops: float,
                   arm: str | None = None) -> list[EvalPoint]:
    """Evaluate a checkpoint on fresh rollout workers (no training running); the points are
    labelled `arm` (default: the config's)."""
    engine = config.engine.model_copy(update={"model": model})
    c = config.cluster
    workers = [remote_worker(f"eval-{i}", engine, config.rollout, num_cpus=c.cpus_per_worker,
                             num_gpus=c.gpus_per_worker, resources=c.worker_resources)
               for i in range(c.rollout_workers)]
    try:
        return run_evaluation(share_out(workers), config.evaluation, config.rollout.sampling,
                              arm or config.arm, phase, gflops)
    finally:
        for worker in workers:
            ray.get(worker.shutdown.remote())
            ray.kill(worker)
