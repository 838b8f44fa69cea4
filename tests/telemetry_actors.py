"""Small Ray actors that export metrics exactly as Revisor's actors do, for the Prometheus test.

They start their endpoint and record through the telemetry modules' helpers; what they
record is fixed, so the test can check the values that come out of Prometheus. They import
only the rollout and learner telemetry, as real actors do (the driver's metrics live in the
driver process alone).
"""

from __future__ import annotations

from rollout_workers.telemetry import mark_actor_started, start_metrics_endpoint

PLAYS = {"rollout-0": ("gp", "id-text", [-1.0, 5.0], 2), "rollout-1": ("gp", "ood-rule", [-3.0], 0)}
"""worker -> (task, variant, turn rewards of each episode it plays, policy lag)."""


class Actor:
    """Starts its endpoint like every Revisor actor; `endpoint` is what the driver collects."""

    def __init__(self, role: str, worker: str) -> None:
        self.worker = worker
        self.address = start_metrics_endpoint()
        mark_actor_started(role, worker)

    def endpoint(self) -> str:
        return self.address


class RolloutActor(Actor):
    def __init__(self, worker: str) -> None:
        super().__init__("rollout", worker)
        self.version = 0

    def play(self, episodes: int) -> None:
        from rollout_workers import telemetry

        task, variant, rewards, lag = PLAYS[self.worker]
        self.version += 1
        telemetry.record_weight_sync(self.worker, self.version, seconds=0.02, nbytes=4096)
        telemetry.set_episodes_in_flight(self.worker, episodes)
        for _ in range(episodes):
            telemetry.record_generate(self.worker, seconds=0.05, sequences=len(rewards))
            telemetry.record_episode(
                task, variant, self.worker, rewards, success=rewards[-1] > 0,
                generated_tokens=25 * len(rewards), prompt_tokens=80 * len(rewards),
                policy_lag=lag, outcomes=["wrong_value" if r < 5 else "success" for r in rewards])


class LearnerActor(Actor):
    def __init__(self) -> None:
        super().__init__("learner", "learner-0")
        self.version = 0

    def play(self, episodes: int) -> None:
        from learner import telemetry

        self.version += 1
        telemetry.record_sft_step({"loss": 1.5, "lr": 1e-5, "grad_norm": 2.0, "tokens": 512,
                                   "seconds": 0.3})
        telemetry.record_ppo_update({
            "policy_version": self.version, "loss": 0.4, "policy_loss": -0.1, "value_loss": 1.2,
            "entropy": 0.8, "approx_kl": 0.01, "clip_fraction": 0.125, "lr": 1e-6,
            "episodes": episodes, "tokens": 900, "mean_staleness": 0.5, "max_staleness": 2,
            "seconds": 1.5, "grad_norm": 0.7, "stale_weight": 0.9, "stale_dropped": 0.05})
        telemetry.record_weight_publish(self.version, seconds=0.01, nbytes=8192)


class EnvActor(Actor):
    def __init__(self) -> None:
        super().__init__("env", "env-0")

    def play(self, episodes: int) -> None:
        from rollout_workers import telemetry

        for _ in range(episodes):
            telemetry.record_env_step("gp", "id-text", seconds=0.002)


class DriverActor(Actor):
    """Stands in for the driver process, whose metrics are the queue's, the ledger's, the
    fleet's and evaluation results (a separate process, so the test's own registry stays out)."""

    def __init__(self) -> None:
        super().__init__("driver", "driver")
        self.played = 0

    def play(self, episodes: int) -> None:
        from cluster import telemetry

        self.played += episodes
        telemetry.record_queue(depth=3, capacity=16, duplicates=1)
        telemetry.record_ledger({"issued": 2 * self.played, "completed": self.played,
                                 "reissued": 1, "duplicates_rejected": 1, "dropped_stale": 1})
        telemetry.record_workers("rollout", desired=2, alive=2)
        telemetry.record_evaluation("gp", "ood-rule", "ood-rule", success=0.25, episodes=40)

    def record_restart(self, role: str, worker: str) -> None:
        from cluster import telemetry

        telemetry.record_worker_restart(role, worker)
