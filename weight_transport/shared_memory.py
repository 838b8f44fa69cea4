"""Weights through shared memory (`weight_sync: "shared_memory"`; CPU machines, one node).

Learner rank 0 packs its weights into buffers that live in one anonymous shared-memory file
(a memfd), kept from one publication to the next; a worker on the same node maps it read-only
through /proc and hands views of it to its engine. A publication thus costs one memory copy on the
learner (into the segment) and the engine's own load: nothing is copied into the object store,
whose fresh pages cost more than the copy itself (see benchmarks/weight_sync.py). A worker on
another node takes rank 0's copy through the object store instead.

The segment holds one version at a time: rank 0 rewrites it at the next export, which the
driver makes only after every worker has loaded the last one (an update is published before
the fleet is touched again). The segment goes with rank 0's process, however it ends; other
processes open it through /proc/<pid>/fd, which Linux allows between processes of one user.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

import numpy as np

from contracts.packed_weights import (
    PackedWeights,
    WeightExport,
    WeightLayout,
    WeightPublication,
)
from weight_transport.base import WeightTransport
from weight_transport.object_store import load_packed
from weight_transport.packing import unpack_weights

_ALIGN = 64
"""Each dtype's buffer starts on a cache line."""


class SharedSegment:
    """Rank 0's allocator (weight_transport.packing.Allocate): every buffer in one anonymous
    shared-memory file (memfd), which workers of the node open as /proc/<pid>/fd/<fd>.

    Anonymous, so it can never outlive rank 0's process, however that ends (a named /dev/shm
    file would stay behind a killed process), and not bound by the size of /dev/shm."""

    def __init__(self) -> None:
        self.path: str | None = None
        """Where other processes of the node open it."""
        self._fd: int | None = None

    def __call__(self, sizes: dict[str, int]) -> dict[str, np.ndarray]:
        if self._fd is not None:
            os.close(self._fd)  # mappings already made stay valid until they are dropped
        offsets, total = segment_offsets(sizes)
        self._fd = os.memfd_create("revisor-weights")
        os.ftruncate(self._fd, max(total, 1))
        self.path = f"/proc/{os.getpid()}/fd/{self._fd}"
        whole = np.frombuffer(mmap.mmap(self._fd, max(total, 1)), dtype=np.uint8)
        return {dtype: whole[offsets[dtype] : offsets[dtype] + size]
                for dtype, size in sizes.items()}


def segment_offsets(sizes: dict[str, int]) -> tuple[dict[str, int], int]:
    """Where each dtype's buffer starts in the segment, and the segment's size."""
    offsets, total = {}, 0
    for dtype, size in sizes.items():
        offsets[dtype] = total
        total += -(-size // _ALIGN) * _ALIGN
    return offsets, total


def map_segment(path: str, layout: WeightLayout, version: int) -> PackedWeights:
    """The packed weights in rank 0's segment at `path`, mapped read-only (no copy)."""
    whole = np.memmap(path, dtype=np.uint8, mode="r")
    offsets, _ = segment_offsets(layout.sizes)
    buffers = {dtype: whole[offsets[dtype] : offsets[dtype] + size]
               for dtype, size in layout.sizes.items()}
    return PackedWeights(version=version, entries=layout.entries, buffers=buffers)


class SharedMemoryPublication(WeightPublication):
    segment: str
    """Where workers on rank 0's node open its shared-memory segment (/proc/<pid>/fd/<fd>)."""
    node_id: str
    """Ray node of learner rank 0: only workers on it can map the segment."""
    layout: dict[str, Any]
    """WeightLayout.to_dict() of the buffers in the segment."""
    sender: Any
    """Learner rank 0's actor (`latest_weights`, for workers on other nodes)."""


class SharedMemoryTransport(WeightTransport):
    kind = "shared_memory"
    publication_type = SharedMemoryPublication
    ships_weights = False

    def __init__(self, ranks_per_engine: int = 1) -> None:
        super().__init__(ranks_per_engine)
        self.segment: SharedSegment | None = None
        """Rank 0's segment, once `allocate` made it there."""
        self._mapped: MappedSegment | None = None
        """A worker's: the segment it mapped, kept while rank 0 rewrites it in place."""

    def allocate(self) -> SharedSegment:
        self.segment = self.segment or SharedSegment()
        return self.segment

    def location(self) -> str | None:
        return self.segment.path if self.segment is not None else None

    def publication(self, export: WeightExport, packed_ref: Any, sender: Any
                    ) -> SharedMemoryPublication:
        if export.location is None:
            raise RuntimeError("learner rank 0 packed its weights outside shared memory; its "
                               "weight_sync differs from the driver's")
        return SharedMemoryPublication(segment=export.location, node_id=export.node_id,
                                       layout=export.layout, sender=sender,
                                       version=export.version, num_tensors=export.num_tensors,
                                       num_bytes=export.num_bytes)

    def receive(self, engine: Any, publication: SharedMemoryPublication) -> int:
        """Map the segment on rank 0's node; elsewhere fetch rank 0's copy from the object
        store (one copy per such worker)."""
        import ray

        if publication.node_id != ray.get_runtime_context().get_node_id():
            packed = ray.get(publication.sender.latest_weights.remote())
            return load_packed(engine, packed, publication.version)
        if self._mapped is None or not self._mapped.holds(publication):
            self._mapped = MappedSegment(publication)
        engine.update_weights(iter(self._mapped.views), publication.version)
        return self._mapped.nbytes


class MappedSegment:
    """A worker's mapping of rank 0's segment and the tensors viewing it, made once and kept:
    rank 0 rewrites the same pages at each publication, so the next one costs no mapping, no
    views and no page faults (the engine's load reads pages already mapped)."""

    def __init__(self, publication: SharedMemoryPublication) -> None:
        self.key = _segment_key(publication)
        self.layout = publication.layout
        packed = map_segment(publication.segment, WeightLayout.from_dict(self.layout), 0)
        self.views = list(unpack_weights(packed))
        self.nbytes = packed.nbytes

    def holds(self, publication: SharedMemoryPublication) -> bool:
        """Whether `publication` lies in this very segment, laid out the same way (rank 0
        makes a new segment, perhaps under the same /proc path, when its layout changes)."""
        return self.key == _segment_key(publication) and self.layout == publication.layout


def _segment_key(publication: SharedMemoryPublication) -> tuple[str, int]:
    """The segment's path and its file's inode (a path alone may be reused)."""
    return publication.segment, os.stat(publication.segment).st_ino
