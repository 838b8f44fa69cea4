"""Weights through the Ray object store (`weight_sync: "object_store"`; CPU and GPU, any nodes).

Rank 0 returns its packed weights (one flat buffer per dtype, contracts.packed_weights) from the
export call: Ray copies them once into the object store, owned by the driver, and the
publication carries only the reference. Every worker on a node maps the same shared-memory
buffers without copying, views them as tensors (read-only, no copy either) and hands those to
its engine's reload path, which copies them into the model.
"""

from __future__ import annotations

from typing import Any

from contracts.packed_weights import PackedWeights, WeightExport, WeightPublication
from weight_transport.base import WeightTransport
from weight_transport.packing import unpack_weights


class ObjectStorePublication(WeightPublication):
    ref: Any
    """ray.ObjectRef of a contracts.packed_weights.PackedWeights."""


class ObjectStoreTransport(WeightTransport):
    kind = "object_store"
    publication_type = ObjectStorePublication
    ships_weights = True

    def publication(self, export: WeightExport, packed_ref: Any, sender: Any
                    ) -> ObjectStorePublication:
        return ObjectStorePublication(ref=packed_ref, version=export.version,
                                      num_tensors=export.num_tensors, num_bytes=export.num_bytes)

    def receive(self, engine: Any, publication: ObjectStorePublication) -> int:
        """Map the packed weights from the node's object store (no copy) and load them."""
        import ray

        return load_packed(engine, ray.get(publication.ref), publication.version)


def load_packed(engine: Any, packed: PackedWeights, version: int) -> int:
    """Load `packed` into `engine` as `version` through views of its buffers; the bytes."""
    engine.update_weights(unpack_weights(packed), version)
    return packed.nbytes
