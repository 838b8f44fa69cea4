"""The NCCL weight group of a job (`learner.weight_sync: "nccl"`), kept by the driver's transport.

An NCCL group has a fixed set of ranks, while workers die, are replaced and are scaled. The
choice here: a worker that starts between two publications loads the current weights from
the object store at once (learner rank 0 hands out the copy it keeps), so it never waits for
the next update; and the next publication forms the group again, over the workers serving
then, before it broadcasts. Forming a group costs one rendezvous (about a second), paid only
when the workers changed; a steady fleet reuses its group for every publication.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Rendezvous(BaseModel):
    """Where a weight group meets: rank 0 (learner rank 0) serves the TCP store."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int
    world_size: int = Field(ge=2)
    """1 (the learner) + every engine's tensor-parallel workers."""
    generation: int = 0
    """Counts re-formations: a group is formed again whenever the workers change."""


class WeightGroup:
    """Which workers the current group holds, and its formation count."""

    def __init__(self, ranks_per_engine: int) -> None:
        self.ranks_per_engine = ranks_per_engine
        """Every tensor-parallel worker of an engine is a rank of its own."""
        self.worker_ids: tuple[str, ...] = ()
        self.generation = 0
        self.meeting: dict[str, Any] | None = None
        """The Rendezvous (as a dict) of the current group."""

    def publish(self, publication: Any, members: dict[str, Any]) -> None:
        """Broadcast `publication` (a NcclPublication) from learner rank 0 to every member
        (worker id -> actor handle), forming the group again first when the members changed:
        rank 0 and each member then join the new group inside the same call that takes the
        broadcast (each knows the group it is in)."""
        import ray

        if not members:
            return
        sender = publication.sender
        if tuple(members) != self.worker_ids:
            host, port = ray.get(sender.address.remote())
            self.generation += 1
            self.meeting = self.rendezvous(host, port, len(members))
            self.worker_ids = tuple(members)
        ray.get([sender.send_weights.remote(publication.model_copy(
                    update={"rendezvous": self.meeting}))]
                + [handle.receive_weights.remote(publication.model_copy(
                    update={"rendezvous": self.meeting, "rank_offset": self.rank_offset(index)}))
                   for index, handle in enumerate(members.values())])

    def rendezvous(self, host: str, port: int, engines: int) -> dict[str, Any]:
        world_size = 1 + engines * self.ranks_per_engine
        return Rendezvous(host=host, port=port, world_size=world_size,
                          generation=self.generation).model_dump()

    def rank_offset(self, index: int) -> int:
        """The first rank of the `index`-th engine (rank 0 is the learner)."""
        return 1 + index * self.ranks_per_engine
