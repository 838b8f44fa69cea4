"""What every way of moving weights offers: the WeightTransport interface and its publication.

A transport has one method per side of a publication, all on the same object, so the learner,
the fleet and the workers never ask which way weights travel:
- learner (the driver, over the learner's rank actors): `publish` has rank 0 pack the
  gathered weights and returns a WeightPublication;
- fleet (the driver): `deliver` brings every serving worker onto it, `catch_up` one worker
  started later;
- worker: `receive` loads what `deliver` sent into the worker's engine.
Plus the settings it needs (`learner_refusal`, `engine_refusal`), checked when a config is read.

Rank 0 always keeps its latest packed weights (contracts.packed_weights.WeightPacker reuses their
buffers); a transport decides whether they are also returned into the object store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from rollout_workers.weight_transport import WeightSync


class WeightPublication(BaseModel):
    """A published set of policy weights; each transport adds what its workers fetch."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    version: int
    """Policy version: the number of PPO updates these weights have had."""
    num_tensors: int
    num_bytes: int


class LearnerRanks(Protocol):
    """The learner's rank actors (learner.group.RankPool): `ranks[0]` packs and keeps."""

    ranks: list[Any]

    def gather(self, refs: list[Any]) -> list[Any]:
        """The results of one call per rank, failing at once when a rank dies."""


CallAll = Callable[..., dict[str, Any]]
"""The fleet's `_call_all(method, *args)`: one call per serving worker, the hung and dead ones
replaced; worker id -> result."""


class WeightTransport(ABC):
    """One way weights travel from learner rank 0 to the rollout engines."""

    kind: ClassVar[WeightSync]
    ships_weights: ClassVar[bool]
    """Whether rank 0 returns its packed weights into the object store at each publication."""
    shares_weights: ClassVar[bool] = False
    """Whether rank 0 packs them into shared memory (that workers on its node map)."""

    def __init__(self, ranks_per_engine: int = 1) -> None:
        self.ranks_per_engine = ranks_per_engine
        """Processes per engine (tensor parallelism) that take weights."""

    def learner_refusal(self, gpus_per_rank: float) -> str | None:
        """Why learner ranks with `gpus_per_rank` cannot send this way (None: they can)."""
        return None

    def engine_refusal(self, engine_kind: str, gpus_per_worker: float,
                       hf_only: str | None) -> str | None:
        """Why these rollout engines cannot take weights this way (None: they can);
        `hf_only` is why vLLM cannot serve the model, when it cannot."""
        return None

    def publish(self, learner: LearnerRanks) -> WeightPublication:
        """Every rank gathers (a collective under ZeRO-3); rank 0 packs and keeps the weights,
        and returns them into the object store, owned by the caller, when `ships_weights`."""
        calls = [rank.export.options(num_returns=2).remote(self.ships_weights, self.shares_weights)
                 for rank in learner.ranks]
        infos = learner.gather([info for info, _ in calls])
        return self.publication(infos[0], calls[0][1], learner.ranks[0])

    @abstractmethod
    def publication(self, info: dict[str, Any], packed_ref: Any, sender: Any) -> WeightPublication:
        """The publication of rank 0's export `info` (version, num_tensors, num_bytes, layout,
        node_id, segment: the shared-memory segment's name when `shares_weights`);
        `packed_ref` holds the packed weights when shipped, `sender` is rank 0's actor."""

    @abstractmethod
    def deliver(self, publication: WeightPublication, members: dict[str, Any],
                call_all: CallAll) -> None:
        """Bring every serving worker (worker id -> actor handle) onto `publication`."""

    @abstractmethod
    def catch_up(self, publication: WeightPublication, worker: Any) -> Any:
        """Start loading `publication` into one worker started after it was delivered; the
        ObjectRef of that call, for the caller to wait on (with others)."""

    @abstractmethod
    def receive(self, engine: Any, message: Any, version: int) -> int:
        """On the worker: load the `message` its `deliver` sent into `engine` as `version`;
        returns the bytes loaded."""
