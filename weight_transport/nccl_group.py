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
    ack_port: int = 0
    """Where rank 0 serves the ack board receivers confirm each broadcast on
    (weight_transport.nccl_deadline; 0: no acks, no time limit)."""


class BroadcastReport(BaseModel):
    """What rank 0's send of one publication came to."""

    model_config = ConfigDict(frozen=True)

    nbytes: int
    missing_ranks: list[int] = []
    """Receivers that did not confirm within the publication's time limit."""


class WeightGroup:
    """Which workers the current group holds, and its formation count."""

    def __init__(self, ranks_per_engine: int) -> None:
        self.ranks_per_engine = ranks_per_engine
        """Every tensor-parallel worker of an engine is a rank of its own."""
        self.worker_ids: tuple[str, ...] = ()
        self.generation = 0
        self.meeting: dict[str, Any] | None = None
        """The Rendezvous (as a dict) of the current group."""

    def publish(self, publication: Any, members: dict[str, Any]) -> list[str]:
        """Broadcast `publication` (a NcclPublication) from learner rank 0 to every member
        (worker id -> actor handle), forming the group again first when the members changed:
        rank 0 and each member then join the new group inside the same call that takes the
        broadcast (each knows the group it is in). Returns the members that did not take it
        within `publication.sync_timeout_s`: the caller replaces them, and the next
        publication forms the group without them."""
        import ray

        if not members:
            return []
        sender = publication.sender
        if tuple(members) != self.worker_ids:
            host, port = ray.get(sender.address.remote())
            _, ack_port = ray.get(sender.address.remote())
            self.generation += 1
            self.meeting = self.rendezvous(host, port, len(members), ack_port)
            self.worker_ids = tuple(members)
        send = sender.send_weights.remote(publication.model_copy(update={"rendezvous": self.meeting}))
        receives = {worker_id: handle.receive_weights.remote(publication.model_copy(
                        update={"rendezvous": self.meeting, "rank_offset": self.rank_offset(i)}))
                    for i, (worker_id, handle) in enumerate(members.items())}
        late = self.workers_of(_sent(send, publication).missing_ranks)
        ray.get([ref for worker_id, ref in receives.items() if worker_id not in late])
        if late:
            self.worker_ids = ()  # rank 0 left the broken group: form a new one next time
        return late

    def rendezvous(self, host: str, port: int, engines: int, ack_port: int = 0) -> dict[str, Any]:
        world_size = 1 + engines * self.ranks_per_engine
        return Rendezvous(host=host, port=port, world_size=world_size,
                          generation=self.generation, ack_port=ack_port).model_dump()

    def workers_of(self, ranks: list[int]) -> list[str]:
        """The workers of the current group whose engines hold `ranks`."""
        return sorted({self.worker_ids[(rank - 1) // self.ranks_per_engine] for rank in ranks})

    def rank_offset(self, index: int) -> int:
        """The first rank of the `index`-th engine (rank 0 is the learner)."""
        return 1 + index * self.ranks_per_engine


SEND_GRACE_S = 60.0
"""Beyond the broadcast's own limit, how long rank 0 may take to join a new group and pack."""


def _sent(send: Any, publication: Any) -> BroadcastReport:
    """Rank 0's report of its send; rank 0 stuck past the limit (joining a group some member
    never joins) is an error naming the limit."""
    import ray

    limit = publication.sync_timeout_s
    ready, _ = ray.wait([send], timeout=None if limit is None else limit + SEND_GRACE_S)
    if not ready:
        raise RuntimeError(
            f"learner rank 0 did not finish sending weights version {publication.version} "
            f"within learner.weight_sync_timeout_s={limit:g} s (+{SEND_GRACE_S:g} s to form "
            "the weight group): a rollout worker never joined it; see the workers' logs")
    return ray.get(send)
