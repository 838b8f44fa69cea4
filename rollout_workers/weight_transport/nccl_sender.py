"""Learner rank 0's half of `weight_sync: "nccl"`: keep the latest packed weights, send them.

Rank 0 keeps every publication's packed weights in its host memory (the packer reuses their
buffers anyway, whatever the transport). Each NCCL publication broadcasts them to the weight
group; a worker that starts between two publications gets the same copy through the object
store (`latest`), and joins the group when the fleet forms it again at the next publication.
"""

from __future__ import annotations

from typing import Any

from contracts.packed_weights import PackedWeights
from rollout_workers.weight_transport.nccl_broadcast import (
    close_group,
    open_group,
    require_cuda,
    send_packed,
)
from rollout_workers.weight_transport.nccl_group import Rendezvous


class WeightSender:
    def __init__(self) -> None:
        self.packed: PackedWeights | None = None
        self._group: Any = None

    def keep(self, packed: PackedWeights) -> None:
        self.packed = packed

    def open(self, rendezvous: dict[str, Any]) -> None:
        """Form the weight group as its rank 0 (the workers join at the same time)."""
        device = require_cuda("learner rank 0")
        self.close()
        meeting = Rendezvous(**rendezvous)
        self._group = open_group(meeting.host, meeting.port, meeting.world_size, 0, device)

    def send(self, version: int) -> int:
        """Broadcast the kept weights, which must be `version`; returns the bytes sent."""
        packed = self.latest(version)
        if self._group is None:
            raise RuntimeError("no weight group is open on learner rank 0; the fleet forms one "
                               "before the first NCCL publication")
        return send_packed(self._group, packed, require_cuda("learner rank 0"))

    def latest(self, version: int | None = None) -> PackedWeights:
        if self.packed is None:
            raise RuntimeError("learner rank 0 has exported no weights yet")
        if version is not None and version != self.packed.version:
            raise ValueError(f"asked for weights version {version}, but rank 0 keeps version "
                             f"{self.packed.version}")
        return self.packed

    def close(self) -> None:
        if self._group is not None:
            close_group(self._group)
            self._group = None
