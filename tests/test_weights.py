"""Packed weight publications round-trip every tensor exactly, whatever its dtype."""

from __future__ import annotations

import torch

from rollout_workers.weights import pack_weights, unpack_weights


def test_round_trip_mixed_dtypes_and_shapes():
    generator = torch.Generator().manual_seed(0)
    state = {
        "embed.weight": torch.randn(7, 5, generator=generator),
        "norm.weight": torch.randn(5, generator=generator).to(torch.bfloat16),
        "head.bias": torch.randn(3, generator=generator).to(torch.float16),
        "step": torch.tensor(3, dtype=torch.int64),
        "empty": torch.empty(0, 4),
        "transposed": torch.randn(4, 6, generator=generator).t(),
    }
    packed = pack_weights(state, version=12)
    assert packed.version == 12 and set(packed.buffers) == {"float32", "bfloat16", "float16", "int64"}
    assert packed.nbytes == sum(t.numel() * t.element_size() for t in state.values())
    restored = dict(unpack_weights(packed))
    assert list(restored) == list(state)
    for name, tensor in state.items():
        assert restored[name].dtype == tensor.dtype and torch.equal(restored[name], tensor), name


def test_packing_copies_so_later_training_does_not_change_a_publication():
    weight = torch.zeros(3)
    packed = pack_weights({"w": weight}, version=1)
    weight += 1
    assert torch.equal(dict(unpack_weights(packed))["w"], torch.zeros(3))


def test_a_tensor_under_two_names_is_packed_once_and_unpacked_under_both() -> None:
    shared = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    packed = pack_weights({"embed.weight": shared, "bias": torch.ones(3), "head.weight": shared},
                          version=2)
    assert packed.nbytes == (6 + 3) * 4
    unpacked = dict(unpack_weights(packed))
    assert list(unpacked) == ["embed.weight", "bias", "head.weight"]
    assert torch.equal(unpacked["head.weight"], shared) and torch.equal(unpacked["embed.weight"], shared)
