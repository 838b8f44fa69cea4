"""The whole RL loop on one screen: synchronous PPO with one rollout worker.

This is what a Revisor job does, without what makes a job fast and robust (cluster/job/driver.py:
a fleet of workers streaming episodes while the learner trains, bounded staleness, workers
replaced, checkpoints, telemetry). A job with `learner.ppo.max_staleness: 0` and one rollout
worker trains on exactly this loop's episodes and reports its numbers, update by update
(tests/test_job_control.py). The PPO update is learner/ppo_trainer.py, its loss learner/ppo.py.

Usage: python -m cluster.job.loop --config configs/cpu_demo.yaml [key=value ...]
(SFT, checkpoints and the job's own schedule of evaluations are left to `cluster.main`.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ray

from cluster.job.evaluation import describe_points, run_evaluation, share_out
from cluster.job.ledger import EpisodeLedger
from cluster.job.run import ensure_model
from cluster.job.runtime import ray_cluster
from cluster.results.compute import TokenCounts, training_gflops
from cluster.results.evaluations import EvalPoint
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import load_settings
from contracts.episode_spec import EpisodeSpec
from contracts.learner_messages import UpdateStats
from contracts.trajectory import BatchMeta
from learner.group import LearnerGroup
from learner.model import count_parameters
from rollout_workers.episodes.seeds import SeedList
from rollout_workers.worker import remote_worker


def synchronous_loop(config: ExperimentConfig) -> tuple[list[UpdateStats], list[EvalPoint]]:
    """`training.updates` PPO updates, then one evaluation; every update's stats."""
    t, history, tokens = config.training, [], TokenCounts()  # tokens: the compute axis
    ledger = EpisodeLedger(t.seed, group_size=t.group_size)  # the job's episode order
    worker = remote_worker("loop-0", config.engine, config.rollout,
                           weight_sync=config.learner.weight_sync)
    learner = LearnerGroup(config.learner)
    try:
        for _ in range(t.updates):
            # 1. Play: the ledger's next episodes (a group of `group_size` shares one task
            #    instance), each a sequential-revision dialogue against the verifier.
            specs = [EpisodeSpec(episode_id=str(item.episode_id), task=config.task, seed=item.seed)
                     for item in ledger.issue(worker="loop-0", count=t.episodes_per_update)]
            batches = list(worker.rollouts.remote(SeedList(specs=specs)))
            for spec in specs:
                ledger.complete(int(spec.episode_id))
            # 2-3. Score (log-probs, values, turn-level GAE) and PPO epochs on the learner ranks,
            #    each on its own shard of the batches (whole groups, balanced by tokens).
            result = learner.update(batches)
            # 4. Publish, when due (every learner.publish_every updates): the new weights reach
            #    the engine before it plays another episode.
            if result.weights is not None:
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
    parser = argparse.ArgumentParser(prog="python -m cluster.job.loop", description=__doc__)
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
