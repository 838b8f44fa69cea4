"""What every way of moving weights offers: the WeightTransport interface.

A transport has one method per side of a publication, all on the same object, so the learner,
the fleet and the workers never ask which way weights travel:
- learner rank 0 (its WeightKeeper holds the transport): `allocate` makes the buffers it
  packs into, `export` says where they are (contracts.packed_weights.WeightExport), and `send`
  serves a delivery that rank 0 takes part in (an NCCL broadcast);
- driver, over the learner's rank actors: `publish` has rank 0 pack the gathered weights and
  returns the transport's WeightPublication, the one message every worker receives;
- fleet (the driver): `deliver` brings every serving worker onto it, `catch_up` one worker
  started later;
- worker (one transport for its life, made when it starts): `receive` loads a publication
  into the worker's engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from contracts.packed_weights import PackedWeights, WeightExport, WeightPublication
from weight_transport.choices import Transport

if TYPE_CHECKING:
    from weight_transport.packing import Allocate


class LearnerRanks(Protocol):
    """The learner's rank actors (learner.group.RankPool): `ranks[0]` packs and keeps."""

    ranks: list[Any]

    def gather(self, refs: list[Any]) -> list[Any]:
        """The results of one call per rank, failing at once when a rank dies."""


CallAll = Callable[[Callable[[Any], Any]], dict[str, Any]]
"""The fleet's `_call_all(call)`: `call(worker)` (a worker actor -> the ref of one of its
method calls) on every serving worker, the hung and dead ones replaced; worker id -> result."""

class WeightTransport(ABC):
    """One way weights travel from learner rank 0 to the rollout engines."""

    kind: ClassVar[Transport]
    publication_type: ClassVar[type[WeightPublication]]
    """What `publication` makes and what `receive` takes."""
    ships_weights: ClassVar[bool]
    """Whether rank 0 returns its packed weights into the object store at each publication."""

    def __init__(self, ranks_per_engine: int = 1) -> None:
        self.ranks_per_engine = ranks_per_engine
        """Processes per engine (tensor parallelism) that take weights."""

    # Learner rank 0.

    def allocate(self) -> Allocate | None:
        """Where rank 0 makes its packed buffers (None: the heap)."""
        return None

    def export(self, packed: PackedWeights, node_id: str) -> WeightExport:
        """What rank 0 tells the driver about `packed`, its buffers on Ray node `node_id`."""
        from weight_transport.fingerprint import fingerprint
        from weight_transport.packing import unpack_weights

        return WeightExport(version=packed.version, num_tensors=len(packed.entries),
                            num_bytes=packed.nbytes, layout=packed.layout.to_dict(),
                            node_id=node_id, location=self.location(),
                            fingerprint=fingerprint(unpack_weights(packed)))

    def location(self) -> str | None:
        """Where other processes of rank 0's node open its buffers (None: they cannot)."""
        return None

    def send(self, packed: PackedWeights, message: WeightPublication) -> Any:
        """Rank 0's part of delivering `message`, for a transport where rank 0 takes part
        (the driver calls it through the rank actor's `send_weights`); its report (NCCL:
        nccl_group.BroadcastReport, the bytes sent and the receivers that missed it)."""
        raise RuntimeError(f"weight_sync={self.kind!r}: learner rank 0 sends nothing itself")

    # Driver.

    def publish(self, learner: LearnerRanks) -> WeightPublication:
        """Every rank gathers (a collective under ZeRO-3); rank 0 packs and keeps the weights,
        and returns them into the object store, owned by the caller, when `ships_weights`."""
        calls = [rank.export.options(num_returns=2).remote() for rank in learner.ranks]
        exports = learner.gather([export for export, _ in calls])
        publication = self.publication(exports[0], calls[0][1], learner.ranks[0])
        return publication.model_copy(update={"fingerprint": exports[0].fingerprint})

    @abstractmethod
    def publication(self, export: WeightExport, packed_ref: Any, sender: Any
                    ) -> WeightPublication:
        """The publication of rank 0's `export`; `packed_ref` holds the packed weights when
        shipped, `sender` is rank 0's actor (its `latest_weights` and `send_weights`)."""

    def deliver(self, publication: WeightPublication, members: dict[str, Any],
                call_all: CallAll) -> list[str]:
        """Bring every serving worker (worker id -> actor handle) onto `publication`; the
        workers that did not take it in time, for the caller to replace (`call_all` already
        replaces the workers that die or hang meanwhile)."""
        checked = self.check(publication)
        call_all(lambda worker: worker.receive_weights.remote(checked))
        return []

    def catch_up(self, publication: WeightPublication, worker: Any) -> Any:
        """Start loading `publication` into one worker started after it was delivered; the
        ObjectRef of that call, for the caller to wait on (with others)."""
        return worker.receive_weights.remote(self.check(publication))

    def check(self, publication: WeightPublication) -> WeightPublication:
        """`publication`, when it is this transport's (else the learner and the fleet were
        given different `weight_sync`s, and the workers could not load it)."""
        if not isinstance(publication, self.publication_type):
            raise TypeError(f"weight_sync={self.kind!r} cannot deliver a "
                            f"{type(publication).__name__}: the learner and the fleet were "
                            "given different weight_sync settings")
        return publication

    # Worker.

    @abstractmethod
    def receive(self, engine: Any, publication: WeightPublication) -> int:
        """On the worker: load `publication` into `engine`; returns the bytes loaded."""
