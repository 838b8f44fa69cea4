"""The packed form a weight publication travels in: flat byte buffers (one per dtype) and the
index of every tensor in them.

Types only (NumPy buffers, no torch): packing and unpacking them is weight_transport.packing.
A whole policy travels as a few buffers, never one remote call per tensor, and a receiver
views its tensors inside them without copying.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    """Byte offset inside the buffer of its dtype."""
    nbytes: int


@dataclass(frozen=True)
class WeightLayout:
    """Where every tensor lies in the buffers of a publication, without the bytes: what a
    receiver needs to size its buffers and cut them into tensors. Plain lists and dicts in
    `to_dict`, so it travels through any RPC (vLLM's included)."""

    entries: list[TensorEntry]
    sizes: dict[str, int]
    """dtype name -> buffer size in bytes, in the order the buffers are sent."""

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [[e.name, e.dtype, list(e.shape), e.offset, e.nbytes]
                            for e in self.entries],
                "sizes": dict(self.sizes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightLayout:
        entries = [TensorEntry(name, dtype, tuple(shape), offset, nbytes)
                   for name, dtype, shape, offset, nbytes in data["entries"]]
        return cls(entries=entries, sizes={k: int(v) for k, v in data["sizes"].items()})

    @property
    def nbytes(self) -> int:
        return sum(self.sizes.values())


@dataclass(frozen=True)
class PackedWeights:
    version: int
    entries: list[TensorEntry]
    buffers: dict[str, np.ndarray] = field(repr=False)
    """dtype name -> flat uint8 buffer."""

    @property
    def nbytes(self) -> int:
        return sum(buffer.nbytes for buffer in self.buffers.values())

    @property
    def layout(self) -> WeightLayout:
        return WeightLayout(self.entries, {k: b.nbytes for k, b in self.buffers.items()})


class WeightExport(BaseModel):
    """What learner rank 0 tells the driver after packing a publication: enough for any
    transport to announce it (the packed bytes themselves travel apart, if at all)."""

    model_config = ConfigDict(frozen=True)

    version: int
    """Policy version: the number of PPO updates these weights have had."""
    num_tensors: int
    num_bytes: int
    layout: dict[str, Any]
    """WeightLayout.to_dict() of the packed buffers."""
    node_id: str
    """Ray node of learner rank 0 (where its buffers can be mapped)."""
    location: str | None = None
    """Where processes of `node_id` open the buffers (a shared-memory transport's segment);
    None when they live in rank 0's private memory."""
    fingerprint: str | None = None
    """weight_transport.fingerprint of the packed tensors (the sync-divergence guard)."""


class WeightPublication(BaseModel):
    """A published set of policy weights, and the message every worker receives: each
    transport adds what its workers need to fetch the bytes."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    version: int
    """Policy version: the number of PPO updates these weights have had."""
    num_tensors: int
    num_bytes: int
    fingerprint: str | None = None
    """Rank 0's weight_transport.fingerprint of these weights: what a worker that loaded them
    reports back with its batches."""
    sync_timeout_s: float | None = None
    """How long delivering it may take (learner.weight_sync_timeout_s; NCCL honours it)."""
    publication: int = 0
    """The driver's count of publications up to this one, re-publications of a version
    included: a worker stamps the count of the weights it has loaded on every batch, so that
    the sync-divergence guard can tell batches shipped before a re-publication from after."""
