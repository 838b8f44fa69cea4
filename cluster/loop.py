"""The whole RL loop on one screen: synchronous PPO with one rollout worker.

This is what a Revisor job does, without what makes a job fast and robust (cluster/driver.py:
a fleet of workers streaming episodes while the learner trains, bounded staleness, workers
replaced, checkpoints, telemetry). A job with `learner.ppo.max_staleness: 0` and one rollout
worker trains on exactly this loop's episodes and reports its numbers, update by update
(tests/test_job_control.py). The PPO update is learner/ppo_trainer.py, its loss learner/ppo.py.

Usage: python -m cluster.loop --config configs/cpu_demo.yaml [key=value ...]
(SFT, checkpoints and the job's own schedule of evaluations are left to `cluster.main`.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ray

from cluster.compute import TokenCounts, training_gflops
from cluster.config import ExperimentConfig
from cluster.evaluation import describe_points, run_evaluation, share_out
from cluster.main import ensure_model
from cluster.results import EvalPoint
from cluster.runtime import ray_cluster
from cluster.settings import load_settings
from contracts.episode_spec import EpisodeSpec
from contracts.trajectory import BatchMeta
from learner.group import LearnerGroup
from learner.model import count_parameters
from learner.stats import UpdateStats
from rollout_workers.episodes.seeds import SeedList
from rollout_workers.worker import remote_worker


def synchronous_loop(config: ExperimentConfig) -> tuple[list[UpdateStats], list[EvalPoint]]:
    """`training.updates` PPO updates, then one evaluation; every update's stats."""
    t, history, tokens = config.training, [], TokenCounts()  # tokens: the compute axis
    worker = remote_worker("loop-0", config.engine, config.rollout,
                           weight_sync=config.learner.weight_sync)
    learner = LearnerGroup(config.learner)
    try:
        for update in range(t.updates):
            # 1. Play: the next episodes in the job's order (seed = training seed + index), each
            #    a sequential-revision dialogue against the verifier, on the current weights.
            first = update * t.episodes_per_update
            specs = [EpisodeSpec(episode_id=str(i), task=config.task, seed=t.seed + i)
                     for i in range(first, first + t.episodes_per_update)]
            batches = list(worker.rollouts.remote(SeedList(specs=specs)))
            # 2-3. Score (log-probs, values, turn-level GAE) and PPO epochs on the learner ranks.
            result = learner.update(batches)
            # 4. Publish: the new weights reach the engine before it plays another episode
            #    (the one worker loads them the way learner.weight_sync says).
            ray.get(learner.transport.catch_up(result.weights, worker))
            history.append(result.stats)
            print(f"update {result.stats.policy_version}: reward {result.stats.mean_reward:.2f}, "
                  f"success {result.stats.success_rate:.1%}, loss {result.stats.loss:.4f}")
            generated = sum(BatchMeta.of(batch).generated_tokens for batch in ray.get(batches))
            tokens += TokenCounts(rl=result.stats.tokens, generated=generated)
        # 5. Evaluate: every split's fixed seeds, greedy by default, on the final weights.
        gflops = training_gflops(count_parameters(config.learner.model), tokens)
        points = run_evaluation(share_out([worker]), config.evaluation, config.rollout.sampling,
                                config.arm, f"step-{t.updates}", gflops)
    finally:
        learner.shutdown()
        ray.get(worker.shutdown.remote())
        ray.kill(worker)
    return history, points


def main(argv: list[str] | None = None) -> None:
    """Run the loop on the job's settings (its model built or imported first, as a job does)."""
    parser = argparse.ArgumentParser(prog="python -m cluster.loop", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="experiment settings (YAML)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value settings")
    args = parser.parse_args(argv)
    config = load_settings(ExperimentConfig, args.config, args.overrides)
    ensure_model(config)
    with ray_cluster(config.cluster):
        _, points = synchronous_loop(config)
    print("\n".join(describe_points(points)))


if __name__ == "__main__":
    main()
