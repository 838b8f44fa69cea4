"""Packing a state dict into one flat buffer per dtype, and viewing it as tensors again.

The learner publishes a whole policy as a few flat byte buffers plus an index
(contracts.packed_weights.PackedWeights); every receiver views its tensors inside them without
copying. Rank 0 packs into the same buffers at every publication (WeightPacker): fresh pages
cost more than the copy itself.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import torch

from contracts.packed_weights import PackedWeights, TensorEntry

Allocate = Callable[[dict[str, int]], dict[str, np.ndarray]]
"""dtype name -> size in bytes, to dtype name -> flat uint8 buffer of that size."""


def pack_weights(state_dict: Mapping[str, torch.Tensor], version: int,
                 allocate: Allocate | None = None) -> PackedWeights:
    """Copy every tensor once into one contiguous buffer per dtype (from `allocate`, else the
    heap), keeping the names' order.

    A tensor listed under several names (tied input and output embeddings) is stored once and
    indexed under each name, so an engine that loads weights by name sees all of them.
    """
    entries, sizes, first_entry = [], {}, {}
    for name, tensor in state_dict.items():
        if id(tensor) in first_entry:
            entries.append(dataclasses.replace(first_entry[id(tensor)], name=name))
            continue
        dtype = str(tensor.dtype).removeprefix("torch.")
        nbytes = tensor.numel() * tensor.element_size()
        entry = TensorEntry(name, dtype, tuple(tensor.shape), sizes.get(dtype, 0), nbytes)
        entries.append(first_entry.setdefault(id(tensor), entry))
        sizes[dtype] = sizes.get(dtype, 0) + nbytes
    buffers = (allocate or _heap)(sizes)
    for entry, tensor in zip(entries, state_dict.values(), strict=True):
        if first_entry[id(tensor)] is entry:
            flat = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
            buffers[entry.dtype][entry.offset : entry.offset + entry.nbytes] = flat.numpy()
    return PackedWeights(version=version, entries=entries, buffers=buffers)


class WeightPacker:
    """Packs one model's weights again and again into the same buffers.

    The layout is made, and the buffers allocated, by the first `pack`; each later one copies
    every tensor straight into its place (`targets`), so a publication costs one memory copy
    and no allocation (fresh pages cost more than the copy itself). The PackedWeights returned
    is overwritten by the next pack: hand it on first (Ray copies a returned value into the
    object store when the call returns).
    """

    def __init__(self, allocate: Allocate | None = None) -> None:
        self.allocate = allocate
        """Where the buffers are made (the heap when None; shared memory for some transports)."""
        self.packed: PackedWeights | None = None
        self._targets: dict[str, torch.Tensor] | None = None

    def targets(self) -> dict[str, torch.Tensor] | None:
        """name -> writable view of its place in the kept buffers (None before the first
        pack); made once per layout, as the buffers are."""
        if self.packed is None:
            return None
        if self._targets is None:
            views = {dtype: torch.from_numpy(buffer)
                     for dtype, buffer in self.packed.buffers.items() if buffer.nbytes}
            self._targets = dict(tensor_views(self.packed.entries, views))
        return self._targets

    def pack(self, state_dict: Mapping[str, torch.Tensor], version: int) -> PackedWeights:
        """`state_dict` packed as `version`. Its tensors are copied in, unless they already are
        the `targets` views (a caller that gathered straight into them)."""
        if self.packed is None or [e.name for e in self.packed.entries] != list(state_dict):
            self.packed = pack_weights(state_dict, version, self.allocate)
            self._targets = None
            return self.packed
        for name, target in self.targets().items():
            source = state_dict[name]
            if source.data_ptr() != target.data_ptr():
                target.copy_(source.detach().reshape(target.shape))
        self.packed = dataclasses.replace(self.packed, version=version)
        return self.packed


def unpack_weights(packed: PackedWeights) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs viewing the packed buffers, never copying them: an engine's reload
    copies them into the model, and that is the only copy a worker makes."""
    views = {dtype: _byte_view(buffer) for dtype, buffer in packed.buffers.items() if buffer.nbytes}
    return tensor_views(packed.entries, views)


def tensor_views(entries: list[TensorEntry], buffers: Mapping[str, torch.Tensor]
                 ) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs viewing flat uint8 `buffers` (dtype name -> tensor, any device)."""
    for entry in entries:
        dtype = getattr(torch, entry.dtype)
        if entry.nbytes == 0:
            device = next(iter(buffers.values())).device if buffers else "cpu"
            yield entry.name, torch.empty(entry.shape, dtype=dtype, device=device)
            continue
        raw = buffers[entry.dtype][entry.offset : entry.offset + entry.nbytes]
        yield entry.name, raw.view(dtype).reshape(entry.shape)


def _heap(sizes: dict[str, int]) -> dict[str, np.ndarray]:
    return {dtype: np.empty(size, dtype=np.uint8) for dtype, size in sizes.items()}


def _byte_view(buffer: np.ndarray) -> torch.Tensor:
    """A uint8 tensor over `buffer`. Object-store buffers are read-only shared memory; torch
    warns that it cannot mark a tensor read-only but views them fine, and the tensors are only
    read (engines copy out of them), so the warning is silenced here and nowhere else."""
    if buffer.flags.writeable:
        return torch.from_numpy(buffer)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable",
                                category=UserWarning)
        return torch.from_numpy(buffer)
