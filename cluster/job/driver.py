"""The RL phase of a job: stream episodes to the learner, publish weights, evaluate, checkpoint.

The driver moves metadata and object references only: workers put record batches into the
broker, the learner fetches them by reference, and new weights go from the learner to the
workers as one object-store reference per publication. A batch lives in the object store of
the worker that made it; when that worker dies after the batch was taken and before the
learner read it, the update is retried on fresh data and the lost episodes are replayed.

A resumed run continues from the last checkpoint exactly: the updates and evaluations the
interrupted run recorded after it are dropped from the run directory and done again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel
from rich.console import Console

from cluster.job import telemetry
from cluster.job.broker import RolloutBroker
from cluster.job.control import read_control
from cluster.job.evaluation import describe_points, run_evaluation
from cluster.job.fleet import WorkerFleet
from cluster.job.runtime import JobFailed
from cluster.job.sync_guard import GuardTrip, SyncGuard
from cluster.job.telemetry import write_prometheus_config
from cluster.job.update_clock import UpdateClock
from cluster.results.compute import TokenCounts, training_gflops
from cluster.results.evaluations import (
    TRAINING_LOG,
    EvalPoint,
    read_evaluations,
    read_training_log,
    write_evaluations,
)
from cluster.settings.experiment import ExperimentConfig
from contracts.broker_messages import LedgerState, Taken
from contracts.learner_messages import UpdateStats
from contracts.trajectory import BatchMeta
from learner.checkpoint_manifest import CheckpointError, choose_checkpoint
from learner.group import LearnerGroup, LearnerRankLost, UpdateResult
from telemetry.metrics import mark_actor_started, start_metrics_endpoint

console = Console()
HEALTH_CHECK_S = 2.0
"""How often the driver looks for dead rollout workers while it waits for data."""
LOST_DATA = (ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError)
"""What reading a batch raises when its owner (the worker that made it) died first."""


class RLOutcome(BaseModel):
    evaluations: list[EvalPoint]
    tokens: TokenCounts
    policy_version: int
    restarts: int
    """Rollout workers replaced because they died or hung."""
    env_actor_restarts: int = 0
    """Env/verifier actors restarted under the rollout workers serving at the end."""
    episodes: dict[str, int]
    """The broker's episode accounting: issued, completed, reissued, duplicates, stale."""
    engines: list[str] = []
    """What served the rollouts: engine, implementation and, where the configured engine
    could not serve the model, why another one does."""


class RLDriver:
    """One RL phase, from a model (or a checkpoint to resume) to its final evaluation."""

    def __init__(self, config: ExperimentConfig, parameters: int, tokens: TokenCounts,
                 resume: bool = False) -> None:
        self.config, self.parameters, self.tokens = config, parameters, tokens
        self.run_dir = Path(config.run_dir)
        self.checkpoints = self.run_dir / "checkpoints"
        choice = choose_checkpoint(self.checkpoints) if resume else None  # torn ones skipped
        self.learner = LearnerGroup(config.learner, metrics=config.metrics,
                                    resources=config.cluster.learner_resources)
        self.endpoint = start_metrics_endpoint(config.metrics)
        mark_actor_started("driver", "driver")
        state = self.learner.load(self.checkpoints, choice.tag) if choice else None
        self.version = state.policy_version if state else 0
        if state:
            self.tokens = TokenCounts(**state.extra["tokens"])
        ledger = LedgerState(**state.extra["ledger"]) if state else None
        self.broker = ray.remote(RolloutBroker).options(num_cpus=0, max_concurrency=64).remote(
            config.task, config.training, config.max_staleness, config.learner.publish_every, ledger,
            self.version)
        self.fleet = WorkerFleet(self.broker, config.cluster, config.engine, config.rollout,
                                 config.learner.weight_sync, name_prefix=config.name)
        self.evaluations: list[EvalPoint] = []
        self.clock = UpdateClock()
        self.guard = SyncGuard(config.learner.gap_limits)
        if resume:
            if choice.note:
                console.print(choice.note)
            console.print(f"resumed {self.run_dir} from checkpoint version {self.version}")
            self._publish(self.learner.publish(self.version))
            self._restore_history()

    def run(self) -> RLOutcome:
        """The phase; a learner rank that dies ends it with one line saying where to resume."""
        try:
            return self._run()
        except LearnerRankLost as lost:
            raise JobFailed(f"{lost}. {self._where_to_resume()}") from None

    def _where_to_resume(self) -> str:
        try:
            choice = choose_checkpoint(self.checkpoints)
        except CheckpointError:
            return "No complete checkpoint was written yet: start the job again"
        return (f"The last complete checkpoint is {self.checkpoints / choice.tag}; go on from it "
                f"with: revisor run --resume {self.run_dir}")

    def _run(self) -> RLOutcome:
        t = self.config.training
        # The scrape config first, then the targets: whoever sees the targets can start
        # Prometheus. The learner and the driver are listed while the workers' engines load.
        write_prometheus_config(self.run_dir)
        self._refresh_targets()
        self.fleet.scale_to(self.config.cluster.rollout_workers)
        self._refresh_targets()
        engines = self.fleet.engines()
        console.print(f"rollout engine: {'; '.join(engines)}")
        if self.version == 0 and t.evaluate_init:  # a resumed run keeps to the schedule
            self._evaluate("init")
        targets = sorted(g for g in t.eval_at_gflops if g > self.gflops)
        self.clock.generated(self.fleet.stats())  # engine time so far is not the first update's
        # Counted by version, not by turns of the loop: an update the guard refused trains
        # nothing, and the guard ends the job when two refusals come in a row.
        while self.version < t.updates:
            if t.eval_at_gflops and not targets:
                break  # every compute point is evaluated
            self.clock.start()
            metas, stats = self._update()
            if self.guard.last is None:
                targets = self._after_update(targets)
            self._log(metas, stats)
        if t.updates and (not t.checkpoint_every or self.version % t.checkpoint_every):
            self._checkpoint()
        if self.version and (not self.evaluations or self.evaluations[-1].phase != f"step-{self.version}"):
            self._evaluate(f"step-{self.version}")
        ledger = ray.get(self.broker.stats.remote()).ledger
        telemetry.record_ledger(ledger, run=str(self.run_dir))
        return RLOutcome(evaluations=self.evaluations, tokens=self.tokens,
                         policy_version=self.version, restarts=self.fleet.restarts,
                         episodes=ledger.model_dump(),
                         engines=engines,
                         env_actor_restarts=sum(s.env_actor_restarts for s in self.fleet.stats()))

    def _after_update(self, targets: list[float]) -> list[float]:
        """The checkpoint and evaluation due after an update; the compute points left."""
        t = self.config.training
        if t.checkpoint_every and self.version % t.checkpoint_every == 0:
            with self.clock.timed("checkpoint"):
                self._checkpoint()
        if targets and self.gflops >= targets[0]:
            targets = [g for g in targets if g > self.gflops]
            with self.clock.timed("evaluate"):
                self._evaluate(f"step-{self.version}")
        elif t.eval_every and self.version % t.eval_every == 0 and self.version < t.updates:
            with self.clock.timed("evaluate"):
                self._evaluate(f"step-{self.version}")
        return targets

    @property
    def gflops(self) -> float:
        """Training compute so far, by the study's accounting (cluster.results.compute)."""
        return training_gflops(self.parameters, self.tokens)

    def shutdown(self) -> None:
        ray.get(self.broker.finish.remote())
        self.fleet.shutdown()
        self.learner.shutdown()

    def _update(self) -> tuple[list[BatchMeta], UpdateStats | None]:
        """Take an update's episodes, train on them, publish; the batches' metadata and the
        learner's statistics (None when the guard refused the batches unread), for the log."""
        self._follow_control()
        with self.clock.timed("wait"):
            taken = self._take(self.config.training.episodes_per_update)
        trip = self.guard.check_fingerprints([meta for meta, _ in taken.batches])
        result = None if trip else self._train(taken)
        metas = [meta for meta, _ in taken.batches]
        if result is not None:
            self.clock.learner(result.stats.seconds, result.stats.score_seconds,
                               result.export_seconds)
            trip = self.guard.check_gap(result.stats, metas)
        self._judge(trip, metas)
        if result is not None and trip is None:
            self.version = result.stats.policy_version
        if result is not None and result.weights is not None:
            with self.clock.timed("publish"):
                self._publish(result.weights)
        trained = result.stats.tokens if result is not None and trip is None else 0
        self.tokens = self.tokens + TokenCounts(
            rl=trained, generated=sum(m.generated_tokens for m in metas))
        return metas, result.stats if result is not None else None

    def _judge(self, trip: GuardTrip | None, metas: list[BatchMeta]) -> None:
        """After a guard trip: end the job when the update before tripped too (and this trip's
        episodes began after the re-publication), else publish the weights again (the
        same version) so that every worker loads them afresh, then replay the refused
        episodes (like lost data: same ids, played afresh, with the weights just loaded)."""
        previous = self.guard.record(trip)
        if trip is None:
            return
        telemetry.record_guard_trip(trip.reason)
        if previous is not None:
            raise JobFailed(trip.line())
        console.print(f"sync-divergence guard ({trip.reason}): update not trained on; "
                      f"{trip.detail} (workers {', '.join(trip.workers)}, weights version "
                      f"{trip.version}); publishing the weights again")
        with self.clock.timed("publish"):
            self._publish(self.learner.publish(self.version))
        ray.get(self.broker.data_lost.remote([i for meta in metas for i in meta.episode_ids]))

    def _train(self, taken: Taken) -> UpdateResult:
        """A PPO update on `taken`. Batches that cannot be read (their worker died after
        putting them) go back to the broker to be replayed, and fresh ones take their place;
        `taken` ends up holding exactly the batches trained on."""
        while True:
            try:
                return self.learner.update([ref for _, refs in taken.batches for ref in refs])
            except LOST_DATA:
                episode_ids = give_back_lost(self.broker, taken)
                if not episode_ids:
                    raise
            console.print(f"batches died with their worker before the learner read them: "
                          f"their {len(episode_ids)} episodes are replayed")
            more = self._take(len(episode_ids))
            taken.batches += more.batches
            taken.stale_ids += more.stale_ids

    def _take(self, wanted: int) -> Taken:
        """Batches holding `wanted` episodes; dead workers are replaced while waiting, so the
        episodes they held are replayed instead of awaited forever."""
        timeout = self.config.training.take_timeout_s
        taken, waited = Taken(), 0.0
        while taken.episodes < wanted:
            part = ray.get(self.broker.take_batches.remote(wanted - taken.episodes, HEALTH_CHECK_S))
            taken.batches += part.batches
            taken.stale_ids += part.stale_ids
            waited = 0.0 if part.batches else waited + HEALTH_CHECK_S
            if waited >= timeout:
                raise RuntimeError(f"no trajectories arrived for {timeout:.0f} s "
                                   "(training.take_timeout_s); see the rollout workers' logs")
            if taken.episodes < wanted:
                self._check_workers()
        return taken

    def _publish(self, weights: Any) -> None:
        """Number the publication (the guard tells episodes begun before it from after), then
        send it to every worker."""
        number = self.guard.publications + 1
        weights = weights.model_copy(update={"publication": number})
        self.guard.published(weights.version, weights.fingerprint, number)
        ray.get(self.broker.set_version.remote(weights.version))
        self.fleet.publish(weights)

    def _follow_control(self) -> None:
        wanted = read_control(self.run_dir).rollout_workers
        if wanted and wanted != len(self.fleet.members):
            self.fleet.scale_to(wanted)
            self._refresh_targets()
        self.fleet.reap()
        self._check_workers()
        stats = ray.get(self.broker.stats.remote())
        telemetry.record_queue(stats.queue.depth, stats.queue.capacity, stats.queue.duplicates,
                               run=str(self.run_dir))
        telemetry.record_ledger(stats.ledger, run=str(self.run_dir))
        telemetry.record_workers("rollout", wanted or self.config.cluster.rollout_workers,
                                 len(self.fleet.members))

    def _check_workers(self) -> None:
        events = self.fleet.check()
        for worker in events.restarted:
            telemetry.record_worker_restart("rollout", worker)
            why = (f"hung ({events.hung[worker]}; cluster.worker_timeout_s="
                   f"{self.config.cluster.worker_timeout_s:g}): killed" if worker in events.hung
                   else "died")
            if worker in events.late_weights:
                telemetry.record_guard_trip("timeout")
                why = f"{events.hung[worker]}: killed"
            console.print(f"rollout worker {worker} {why} and replaced; its episodes are "
                          f"replayed ({len(events.replayed_episodes)} in all)")
        if events.restarted:
            self._refresh_targets()

    def _refresh_targets(self) -> None:
        """Tell Prometheus (through its file discovery) where every process serves metrics."""
        endpoints = self.fleet.endpoints()
        endpoints["learner"] = [e for e in [self.learner.metrics_endpoint] if e]
        endpoints["driver"] = [e for e in [self.endpoint] if e]
        telemetry.write_prometheus_targets(telemetry.default_targets_file(self.run_dir), endpoints,
                                           labels={"run": self.config.name})

    def _log(self, metas: list[BatchMeta], stats: UpdateStats | None) -> None:
        """One row of training.jsonl per update: its data, the learner's statistics, and
        where its wall time went (update, checkpoint and evaluation after it included). A
        row the guard refused says why (`skipped`), and `guard_trips` counts them all."""
        episodes = sum(m.episodes for m in metas)
        turns = sum(m.turns for m in metas)
        learner = stats.model_dump(exclude={"seconds", "score_seconds"}) if stats else {}
        trip = self.guard.last
        row = {
            "step": self.version, "episodes": episodes, "turns": turns,
            "mean_reward": sum(m.total_reward for m in metas) / max(turns, 1),
            "success": sum(m.successes for m in metas) / max(episodes, 1),
            "oldest_version": min(m.oldest_version for m in metas),
            "workers": len(self.fleet.members), "gflops": self.gflops,
            **{k: v for k, v in learner.items() if isinstance(v, int | float)},
            "skipped": trip.reason if trip else None, "guard_trips": self.guard.trips,
            **self.clock.finish(self.fleet.stats()),
        }
        telemetry.record_update_time(row["phases"], row["busy"])
        with open(self.run_dir / TRAINING_LOG, "a") as log:
            log.write(json.dumps(row) + "\n")
        phases = "  ".join(f"{k} {v:.1f}" for k, v in row["phases"].items() if v >= 0.05)
        console.print(f"update {self.version}/{self.config.training.updates}: "
                      f"reward/turn {row['mean_reward']:+.3f}  success {row['success']:.1%}  "
                      f"{episodes} episodes  {row['seconds']:.1f} s ({phases})  "
                      f"({row['workers']} workers)")

    def _checkpoint(self) -> None:
        ledger = ray.get(self.broker.state.remote())
        self.learner.save(self.checkpoints, extra={"ledger": ledger.model_dump(),
                                                   "tokens": self.tokens.model_dump()})

    def _evaluate(self, phase: str) -> None:
        self.fleet.pause()
        points = run_evaluation(self.fleet.evaluate, self.config.evaluation,
                                self.config.rollout.sampling, self.config.arm, phase, self.gflops)
        self.evaluations += points
        write_evaluations(self.run_dir, self.evaluations)
        for line in describe_points(points):
            console.print(line)
        for point in points:
            telemetry.record_evaluation(point.task, point.variant, point.split, point.success,
                                        point.episodes)
        self.fleet.resume()
        self._check_workers()  # workers replaced while paused or evaluating

    def _restore_history(self) -> None:
        """Keep what the interrupted run recorded up to the checkpoint resumed from; drop the
        updates and evaluations after it, which this run does again."""
        self.evaluations = [p for p in read_evaluations(self.run_dir)
                            if p.arm == self.config.arm and phase_step(p.phase) <= self.version]
        rows = [row for row in read_training_log(self.run_dir) if row["step"] <= self.version]
        (self.run_dir / TRAINING_LOG).write_text("".join(json.dumps(row) + "\n" for row in rows))


def phase_step(phase: str) -> int:
    """The update an evaluation phase was taken after ('init' is 0, 'step-N' is N)."""
    return 0 if phase == "init" else int(phase.removeprefix("step-"))


def give_back_lost(broker: Any, taken: Taken) -> list[str]:
    """Remove from `taken` the batches whose data is gone and have the broker replay their
    episodes (under the same ids); returns those ids."""
    lost = [batch for batch in taken.batches if not _readable(batch[1])]
    taken.batches = [batch for batch in taken.batches if not any(batch is b for b in lost)]
    episode_ids = [i for meta, _ in lost for i in meta.episode_ids]
    if episode_ids:
        ray.get(broker.data_lost.remote(episode_ids))
    return episode_ids


def _readable(refs: list[Any]) -> bool:
    """Whether a batch's data still exists (read here only when an update failed on it)."""
    try:
        ray.get(refs)
    except LOST_DATA:
        return False
    return True
