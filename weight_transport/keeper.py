"""Learner rank 0's keeper of the packed weights, the same for every transport.

Only rank 0 makes one. It packs each publication into the same buffers (made where its
transport says: the heap, or a shared-memory segment), keeps the latest for workers that
start between two publications, and hands them to its transport when rank 0 takes part in a
delivery (an NCCL broadcast). The learner rank and its actor hold a keeper and call it; they
never look at the transport behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from contracts.packed_weights import PackedWeights, WeightExport, WeightPublication
from weight_transport import WeightSync, make_transport
from weight_transport.packing import WeightPacker


class WeightKeeper:
    """Rank 0's packed buffers and the transport that says where they live and how they go."""

    def __init__(self, weight_sync: WeightSync) -> None:
        self.transport = make_transport(weight_sync)
        self.packer = WeightPacker(self.transport.allocate())

    def targets(self) -> dict[str, torch.Tensor] | None:
        """name -> writable view of its place in the kept buffers, to gather straight into
        (None before the first publication)."""
        return self.packer.targets()

    def keep(self, weights: Mapping[str, torch.Tensor], version: int) -> PackedWeights:
        """Pack `weights` as `version` (no copy for tensors gathered into `targets`)."""
        return self.packer.pack(weights, version)

    def latest(self, version: int | None = None) -> PackedWeights:
        """The kept packed weights, which must be `version` when it is given."""
        packed = self.packer.packed
        if packed is None:
            raise RuntimeError("learner rank 0 has exported no weights yet")
        if version is not None and version != packed.version:
            raise ValueError(f"asked for weights version {version}, but rank 0 keeps version "
                             f"{packed.version}")
        return packed

    def export(self, node_id: str) -> WeightExport:
        """What the driver's transport needs to announce the kept weights."""
        return self.transport.export(self.latest(), node_id)

    def send(self, message: WeightPublication) -> Any:
        """Rank 0's part of delivering `message` (the transport's); its report."""
        return self.transport.send(self.latest(message.version), message)

    @property
    def ships_weights(self) -> bool:
        """Whether the packed weights are returned into the object store at each export."""
        return self.transport.ships_weights
