"""The rollout workers of a job: started, watched, replaced, scaled and kept on the current policy.

Each worker runs `serve(broker)` as one long task; the fleet watches those tasks. A task that
ends with an error means the worker died: the broker replays its episodes, the fleet starts a
replacement under a new id, and the new worker loads the latest published weights before it
asks for work. Scaling down stops a worker politely: it finishes the episodes it holds and
ships them, and it is shut down only once the learner has taken all its batches (they live in
the object store owned by the worker, and die with it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import ray
from pydantic import BaseModel

from cluster.weight_group import WeightGroup
from rollout_workers.broadcast_messages import BroadcastPublication
from rollout_workers.engine import EngineConfig
from rollout_workers.episodes.config import RolloutConfig
from rollout_workers.worker import remote_worker


@dataclass
class Member:
    worker_id: str
    handle: Any
    serving: Any
    """The ObjectRef of its running `serve` task."""


class Publication(BaseModel):
    """The newest weights: a version and the object-store reference of the packed tensors,
    or, with learner.weight_sync='nccl', what to broadcast them from instead."""

    model_config = {"arbitrary_types_allowed": True}

    version: int
    ref: Any = None
    broadcast: BroadcastPublication | None = None


class FleetEvents(BaseModel):
    restarted: list[str] = []
    replayed_episodes: list[str] = []


class WorkerFleet:
    """Driver-side manager of the RolloutWorker actors."""

    def __init__(self, broker: Any, engine: EngineConfig, rollout: RolloutConfig,
                 cpus_per_worker: float, gpus_per_worker: float = 0.0,
                 resources: dict[str, float] | None = None, max_restarts: int = 10,
                 name_prefix: str = "revisor") -> None:
        self.broker, self.engine, self.rollout = broker, engine, rollout
        self.options = {"num_cpus": cpus_per_worker, "num_gpus": gpus_per_worker,
                        "resources": resources or {}}
        self.max_restarts = max_restarts
        self.members: dict[str, Member] = {}
        self.retiring: list[Member] = []
        """Stopped workers kept alive until the learner has taken their last batches."""
        self.restarts = 0
        self.latest: Publication | None = None
        self._ids = itertools.count()
        self.name_prefix = name_prefix
        self.weight_group = WeightGroup(ranks_per_engine=engine.tensor_parallel_size)
        """Used only by NCCL publications (learner.weight_sync='nccl')."""

    def scale_to(self, count: int) -> None:
        """Start or retire workers until `count` serve."""
        new = [self._start() for _ in range(count - len(self.members))]
        self._serve(new)
        for member in list(self.members.values())[count:]:
            self.retire(member.worker_id)

    def engines(self) -> list[str]:
        """The distinct engine descriptions of the serving workers ('vllm (vllm
        implementation, in-process)', 'hf (cpu), instead of vllm: ...')."""
        stats = ray.get([m.handle.stats.remote() for m in self.members.values()])
        return sorted({s.engine.backend for s in stats})

    def publish(self, publication: Publication) -> None:
        """Send new weights to every worker (each switches between two engine steps)."""
        self.latest = publication
        if publication.broadcast is not None:
            self.weight_group.publish(publication.version, publication.broadcast.layout,
                                      publication.broadcast.sender,
                                      {m.worker_id: m.handle for m in self.members.values()})
            return
        pending = [m.handle.update_weights.remote(publication.ref, publication.version)
                   for m in self.members.values()]
        for ref in pending:
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                pass  # died mid-publication: `check` replaces it, and the new one loads `latest`

    def check(self) -> FleetEvents:
        """Replace every worker whose serve task ended in an error; returns what happened."""
        events = FleetEvents()
        refs = [m.serving for m in self.members.values()]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0) if refs else ([], [])
        for member in [m for m in self.members.values() if m.serving in done]:
            try:
                ray.get(member.serving)
            except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError):
                events.replayed_episodes += ray.get(self.broker.worker_lost.remote(member.worker_id))
                events.restarted.append(member.worker_id)
            del self.members[member.worker_id]
        if events.restarted:
            self._replace(len(events.restarted))
        return events

    def pause(self) -> None:
        """Let every worker finish what it holds and stop serving (before an evaluation). What
        they hold may be more than the queue has room for, and only an update makes room:
        the queue takes it all while they stop."""
        ray.get(self.broker.accept_all.remote(True))
        try:
            ray.get([m.handle.stop.remote() for m in self.members.values()])
            ray.get([m.serving for m in self.members.values()])
        finally:
            ray.get(self.broker.accept_all.remote(False))

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

    def handles(self) -> list[Any]:
        return [m.handle for m in self.members.values()]

    def endpoints(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for endpoints in ray.get([m.handle.metrics_endpoints.remote() for m in self.members.values()]):
            for role, addresses in endpoints.items():
                found.setdefault(role, []).extend(addresses)
        return found

    def shutdown(self) -> None:
        for member in self.members.values():
            member.handle.stop.remote()
        for member in [*self.members.values(), *self.retiring]:
            _shutdown(member.handle)
        self.members.clear()
        self.retiring.clear()

    def _replace(self, count: int) -> None:
        self.restarts += count
        if self.restarts > self.max_restarts:
            raise RuntimeError(f"rollout workers died {self.restarts} times (the limit is "
                               f"cluster.max_worker_restarts={self.max_restarts}); see the Ray logs")
        self._serve([self._start() for _ in range(count)])

    def _start(self) -> Member:
        worker_id = f"rollout-{next(self._ids)}"
        handle = remote_worker(worker_id, self.engine, self.rollout,
                               name=f"{self.name_prefix}-{worker_id}", **self.options)
        if self.latest is not None:
            ray.get(handle.update_weights.remote(_current_weights(self.latest), self.latest.version))
        member = Member(worker_id, handle, serving=None)
        self.members[worker_id] = member
        return member

    def _serve(self, members: list[Member]) -> None:
        for member in members:
            member.serving = member.handle.serve.remote(self.broker)


def _current_weights(publication: Publication) -> Any:
    """The object-store reference of the latest weights. On the NCCL path learner rank 0
    hands out the copy it keeps: a new worker serves the current policy at once and joins
    the broadcast group when the next publication forms it again (cluster.weight_group)."""
    if publication.broadcast is None:
        return publication.ref
    return publication.broadcast.sender.latest_weights.remote()


def _shutdown(handle: Any) -> None:
    """Release the engine's shared memory before the actor process goes."""
    try:
        ray.get(handle.shutdown.remote(), timeout=60)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        pass
    ray.kill(handle)
