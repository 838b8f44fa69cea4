"""The rollout workers of a job: started, watched, replaced, scaled and kept on the current policy.

Each worker runs `serve(broker)` as one long task; the fleet watches those tasks. A task that
ends with an error means the worker died: the broker replays its episodes, the fleet starts a
replacement under a new id, and the new worker loads the latest published weights before it
asks for work. Scaling down stops a worker politely: it finishes the episodes it holds and
ships them, and it is shut down only once the learner has taken all its batches (they live in
the object store owned by the worker, and die with it).

A worker that hangs instead of dying (a stopped process, a stuck engine) is found by its
missed pulses (cluster.job.liveness): it is killed and replaced like a dead one. No call the fleet
makes waits on a worker for longer than `worker_timeout_s` without hearing from it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import ray
from pydantic import BaseModel

from cluster.job.liveness import LivenessWatch
from cluster.job.runtime import JobFailed
from cluster.settings.experiment import ClusterConfig
from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.episode import TaskInputError
from contracts.episode_spec import EpisodeSpec
from contracts.packed_weights import WeightPublication
from contracts.rollout_config import RolloutConfig
from rollout_workers.worker import remote_worker
from weight_transport import WeightSync, make_transport


@dataclass
class Member:
    worker_id: str
    handle: Any
    serving: Any
    """The ObjectRef of its running `serve` task."""


WAIT_STEP_S = 2.0
"""How often a call to every worker looks for hung or dead ones while it waits."""


class FleetEvents(BaseModel):
    restarted: list[str] = []
    """Workers replaced, whether they died or hung."""
    hung: dict[str, str] = {}
    """Of those, the ones killed for hanging, with what gave them away."""
    late_weights: list[str] = []
    """Of those, the ones that did not take a publication within its time limit
    (learner.weight_sync_timeout_s)."""
    replayed_episodes: list[str] = []


class WorkerFleet:
    """Driver-side manager of the RolloutWorker actors."""

    def __init__(self, broker: Any, cluster: ClusterConfig, engine: RolloutEngineConfig,
                 rollout: RolloutConfig, weight_sync: WeightSync, name_prefix: str) -> None:
        """Workers of `engine` and `rollout` settings, placed, watched and restarted as
        `cluster` says; weights reach them as `weight_sync` says; actors are named
        `<name_prefix>-<worker id>`."""
        self.broker, self.engine, self.rollout = broker, engine, rollout
        self.options = {"num_cpus": cluster.cpus_per_worker, "num_gpus": cluster.gpus_per_worker,
                        "resources": dict(cluster.worker_resources)}
        self.max_restarts = cluster.max_worker_restarts
        self.members: dict[str, Member] = {}
        self.retiring: list[Member] = []
        """Stopped workers kept alive until the learner has taken their last batches."""
        self.restarts = 0
        self.latest: WeightPublication | None = None
        self._ids = itertools.count()
        self.name_prefix = name_prefix
        self.transport = make_transport(weight_sync, engine.tensor_parallel_size)
        """How publications reach the workers (weight_transport)."""
        self.watch = LivenessWatch(cluster.worker_timeout_s)
        self.start_timeout_s = cluster.worker_start_timeout_s
        self.events = FleetEvents()
        """What happened to workers since the driver last asked (`check`)."""

    def scale_to(self, count: int) -> None:
        """Start or retire workers until `count` serve."""
        self._serve(self._start_many(count - len(self.members)))
        for member in list(self.members.values())[count:]:
            self.retire(member.worker_id)

    def engines(self) -> list[str]:
        """The distinct engine descriptions of the serving workers ('vllm (vllm
        implementation, in-process)', 'hf (cpu), instead of vllm: ...')."""
        return sorted({s.engine.backend for s in self.stats()})

    def stats(self) -> list[Any]:
        """The WorkerStats of every serving worker that answers."""
        return list(self._call_all(lambda worker: worker.stats.remote()).values())

    def publish(self, publication: WeightPublication) -> None:
        """Send new weights to every worker (each switches between two engine steps). A worker
        that dies or hangs meanwhile is replaced, and its replacement loads `latest`."""
        self.latest = publication
        members = {m.worker_id: m.handle for m in self.members.values()}
        late = self.transport.deliver(publication, members, self._call_all)
        for worker_id in late:
            self.events.late_weights.append(worker_id)
            self._drop(self.members[worker_id], hung=True, why=(
                f"did not take weights version {publication.version} within "
                f"learner.weight_sync_timeout_s={publication.sync_timeout_s:g} s"))
        self._replace(len(late))

    def check(self) -> FleetEvents:
        """Replace every worker whose serve task ended in an error or that hangs, and every
        retiring one that hangs; returns what happened since the last call."""
        refs = [m.serving for m in self.members.values() if m.serving is not None]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        ended = [m for m in self.members.values() if m.serving is not None and m.serving in done]
        lost = 0
        for member in ended:
            try:
                ray.get(member.serving)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as error:
                _stop_on_broken_input(member.worker_id, error)
                self._drop(member, "died")
                lost += 1
            else:
                del self.members[member.worker_id]
        lost += self._drop_hung()
        if lost:
            self._replace(lost)
        events, self.events = self.events, FleetEvents()
        return events

    def pause(self) -> None:
        """Let every worker finish what it holds and stop serving (before an evaluation). What
        they hold may be more than the queue has room for, and only an update makes room:
        the queue takes it all while they stop. A worker that hangs instead is replaced (by
        one not yet serving: `resume` starts them all)."""
        ray.get(self.broker.accept_all.remote(True))
        try:
            self._call_all(lambda worker: worker.stop.remote(), serve=False)
            serving = {m.worker_id: m.serving for m in self.members.values()
                       if m.serving is not None}
            lost = len(serving) - len(self._gather(serving))
            self._replace(lost, serve=False)
        finally:
            ray.get(self.broker.accept_all.remote(False))

    def evaluate(self, specs: list[EpisodeSpec], sampling: SamplingSettings) -> list[pa.RecordBatch]:
        """Play `specs` on the paused workers, shared out evenly; the share of a worker that
        dies or hangs meanwhile is played again by its replacement, under the same seeds."""
        batches: list[pa.RecordBatch] = []
        todo = specs
        while todo:
            members = list(self.members.values())
            shares = {m.worker_id: todo[i :: len(members)] for i, m in enumerate(members)}
            calls = {worker_id: self.members[worker_id].handle.evaluate.remote(share, sampling)
                     for worker_id, share in shares.items() if share}
            results = self._gather(calls)
            batches += [batch for result in results.values() for batch in result]
            todo = [spec for worker_id in calls if worker_id not in results
                    for spec in shares[worker_id]]
            self._replace(len(calls) - len(results), serve=False)
        return batches

    def resume(self) -> None:
        self._serve(list(self.members.values()))

    def retire(self, worker_id: str) -> None:
        """Stop `worker_id` taking work; `reap` shuts it down once its data is consumed. Not
        waiting here matters: its last put may wait for room that only the learner makes."""
        member = self.members.pop(worker_id)
        ray.get(member.handle.stop.remote())
        self.retiring.append(member)

    def reap(self) -> list[str]:
        """Shut down the retiring workers that have shipped everything and none of whose
        batches still waits in the broker's queue; returns the episodes replayed because a
        retiring worker died with batches still queued."""
        if not self.retiring:
            return []
        refs = [m.serving for m in self.retiring]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        queued = ray.get(self.broker.queued_workers.remote())
        replayed: list[str] = []
        for member in [m for m in self.retiring if m.serving in done]:
            try:
                ray.get(member.serving)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError):
                replayed += ray.get(self.broker.worker_lost.remote(member.worker_id))
            else:
                if member.worker_id in queued:
                    continue
            self.retiring.remove(member)
            _shutdown(member.handle)
        return replayed

    def endpoints(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for endpoints in self._call_all(lambda worker: worker.metrics_endpoints.remote()).values():
            for role, addresses in endpoints.model_dump().items():
                found.setdefault(role, []).extend(addresses)
        return found

    def shutdown(self) -> None:
        for member in self.members.values():
            member.handle.stop.remote()
        for member in [*self.members.values(), *self.retiring]:
            _shutdown(member.handle)
        self.members.clear()
        self.retiring.clear()

    def _call_all(self, call: Callable[[Any], Any], serve: bool = True) -> dict[str, Any]:
        """`call(worker)` (a worker actor -> the ref of one of its method calls) on every
        serving worker; worker id -> result, for those that answered. The others died or
        hung: they are replaced (and the replacements serve at once when `serve`)."""
        calls = {m.worker_id: call(m.handle) for m in self.members.values()}
        results = self._gather(calls)
        self._replace(len(calls) - len(results), serve=serve)
        return results

    def _gather(self, calls: dict[str, Any]) -> dict[str, Any]:
        """Wait for one call per worker (worker id -> ObjectRef) and return the results of
        those that answered; a worker whose call fails, or that hangs while the others
        answer, is dropped (`_drop`): never a wait without end on one worker."""
        results: dict[str, Any] = {}
        pending = dict(calls)
        while pending:
            done, _ = ray.wait(list(pending.values()), num_returns=len(pending), timeout=WAIT_STEP_S)
            for worker_id, ref in list(pending.items()):
                if ref in done:
                    del pending[worker_id]
                    try:
                        results[worker_id] = ray.get(ref)
                    except ray.exceptions.RayActorError:
                        self._drop(self.members[worker_id], "died")
            hung = self.watch.hung({w: self.members[w].handle for w in pending})
            for worker_id, why in hung.items():
                del pending[worker_id]
                self._drop(self.members[worker_id], why, hung=why != "died")
        return results

    def _drop_hung(self) -> int:
        """Drop the hung workers, serving or retiring; returns how many served."""
        handles = {m.worker_id: m.handle for m in [*self.members.values(), *self.retiring]}
        serving = 0
        for worker_id, why in self.watch.hung(handles).items():
            member = self.members.get(worker_id) or next(
                m for m in self.retiring if m.worker_id == worker_id)
            serving += worker_id in self.members
            self._drop(member, why, hung=why != "died")
        return serving

    def _drop(self, member: Member, why: str, hung: bool = False) -> None:
        """Forget a dead or hung worker: kill it (a hung process answers nothing else), and
        put the episodes it held, and its batches nobody took, back in line."""
        ray.kill(member.handle, no_restart=True)
        if hung:
            self.events.hung[member.worker_id] = why
        self.members.pop(member.worker_id, None)
        if member in self.retiring:
            self.retiring.remove(member)
        self.watch.forget({member.worker_id})
        self.events.restarted.append(member.worker_id)
        self.events.replayed_episodes += ray.get(self.broker.worker_lost.remote(member.worker_id))

    def _replace(self, count: int, serve: bool = True) -> None:
        if not count:
            return
        self.restarts += count
        if self.restarts > self.max_restarts:
            raise RuntimeError(f"rollout workers died or hung {self.restarts} times (the limit is "
                               f"cluster.max_worker_restarts={self.max_restarts}); see the Ray logs")
        new = self._start_many(count)
        if serve:
            self._serve(new)

    def _start_many(self, count: int) -> list[Member]:
        """Start `count` workers; return once each has loaded its engine and the current
        weights (liveness pulses judge a worker only from then on)."""
        started = [self._start() for _ in range(count)]
        _wait_until_started({ref: member for member, refs in started for ref in refs},
                            self.start_timeout_s)
        return [member for member, _ in started]

    def _start(self) -> tuple[Member, list[Any]]:
        """A new worker, and the calls that finish when its engine and weights are loaded."""
        worker_id = f"rollout-{next(self._ids)}"
        handle = remote_worker(worker_id, self.engine, self.rollout,
                               name=f"{self.name_prefix}-{worker_id}",
                               weight_sync=self.transport.kind, **self.options)
        loading = [handle.pulse.remote()]
        if self.latest is not None:
            loading.append(self.transport.catch_up(self.latest, handle))
        member = Member(worker_id, handle, serving=None)
        self.members[worker_id] = member
        return member, loading

    def _serve(self, members: list[Member]) -> None:
        for member in members:
            member.serving = member.handle.serve.remote(self.broker)


def _wait_until_started(loading: dict[Any, Member], timeout_s: float) -> None:
    """Until every call in `loading` has returned. An engine load takes from seconds to many
    minutes, so liveness pulses do not judge it; a worker that dies while loading fails this
    call, and one still loading after `timeout_s` ends the job (a replacement would too)."""
    ready, late = ray.wait(list(loading), num_returns=len(loading), timeout=timeout_s)
    ray.get(ready)
    if late:
        names = ", ".join(sorted({loading[ref].worker_id for ref in late}))
        raise JobFailed(f"rollout worker {names} did not load its engine and weights within "
                        f"cluster.worker_start_timeout_s={timeout_s:g} s; raise it for models "
                        "that take longer to load")


def _stop_on_broken_input(worker_id: str, error: Exception) -> None:
    """A worker that failed on a task input (a route file or photo gone while the job runs)
    ends the job in one line: every replacement would fail the same way."""
    cause = getattr(error, "cause", None)  # the exception as raised, not Ray's wrapper
    if isinstance(cause, TaskInputError):
        message = str(cause).strip().splitlines()[-1]
        raise JobFailed(f"rollout worker {worker_id} cannot play the task: {message}") from None


def _shutdown(handle: Any) -> None:
    """Release the engine's shared memory before the actor process goes."""
    try:
        ray.get(handle.shutdown.remote(), timeout=60)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        pass
    ray.kill(handle)
