"""Weights through the Ray object store (`weight_sync: "object_store"`, the default; CPU and GPU).

Rank 0 returns its packed weights (one flat buffer per dtype, contracts.packed_weights) from the
export call: Ray copies them once into the object store, owned by the driver, and the
publication carries only the reference. Every worker on a node maps the same shared-memory
buffers without copying, views them as tensors (read-only, no copy either) and hands those to
its engine's reload path, which copies them into the model.
"""

from __future__ import annotations

from typing import Any

from contracts.packed_weights import PackedWeights, unpack_weights
from rollout_workers.weight_transport.base import CallAll, WeightPublication, WeightTransport


class ObjectStorePublication(WeightPublication):
    ref: Any
    """ray.ObjectRef of a contracts.packed_weights.PackedWeights; `unpack_weights` gives the
    (name, tensor) pairs in the backbone's naming."""


class ObjectStoreTransport(WeightTransport):
    kind = "object_store"
    ships_weights = True

    def publication(self, info: dict[str, Any], packed_ref: Any, sender: Any
                    ) -> ObjectStorePublication:
        return ObjectStorePublication(ref=packed_ref, version=info["version"],
                                      num_tensors=info["num_tensors"], num_bytes=info["num_bytes"])

    def deliver(self, publication: ObjectStorePublication, members: dict[str, Any],
                call_all: CallAll) -> None:
        call_all("receive_weights", self.kind, publication.ref, publication.version)

    def catch_up(self, publication: ObjectStorePublication, worker: Any) -> Any:
        return worker.receive_weights.remote(self.kind, publication.ref, publication.version)

    def receive(self, engine: Any, message: PackedWeights, version: int) -> int:
        """`message` is the packed weights themselves: Ray resolves the reference passed as
        an argument, mapping the buffers of the node's object store."""
        engine.update_weights(unpack_weights(message), version)
        return message.nbytes
