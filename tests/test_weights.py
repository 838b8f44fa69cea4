"""Packed weight publications round-trip every tensor exactly, whatever its dtype."""

from __future__ import annotations

import torch

from weight_transport.packing import pack_weights, unpack_weights


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


def test_the_packer_reuses_its_buffers_and_each_pack_carries_the_new_values() -> None:
    """The second pack copies into the first one's memory (no new buffers) and holds the
    updated values, tied names included; gathering straight into `targets` needs no copy."""
    from weight_transport.packing import WeightPacker

    embed = torch.randn(6, 4)
    weights = {"embed.weight": embed, "norm.weight": torch.ones(4).to(torch.bfloat16),
               "lm_head.weight": embed}
    packer = WeightPacker()
    assert packer.targets() is None
    first = packer.pack(weights, version=0)
    addresses = {dtype: buffer.ctypes.data for dtype, buffer in first.buffers.items()}
    embed.mul_(2)
    second = packer.pack(weights, version=1)
    assert second.version == 1
    assert {dtype: b.ctypes.data for dtype, b in second.buffers.items()} == addresses
    unpacked = dict(unpack_weights(second))
    assert torch.equal(unpacked["embed.weight"], embed)
    assert torch.equal(unpacked["lm_head.weight"], embed)
    targets = packer.targets()
    targets["norm.weight"].fill_(3)
    third = packer.pack(targets, version=2)
    assert torch.equal(dict(unpack_weights(third))["norm.weight"],
                       torch.full((4,), 3, dtype=torch.bfloat16))


def test_read_only_buffers_unpack_without_a_copy_or_a_warning() -> None:
    """Object-store buffers are read-only: the tensors view them (no copy, no warning)."""
    import warnings

    packed = pack_weights({"w": torch.arange(6.0).reshape(2, 3)}, version=1)
    for buffer in packed.buffers.values():
        buffer.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (name, tensor), = unpack_weights(packed)
    assert tensor.data_ptr() == packed.buffers["float32"].ctypes.data
    assert torch.equal(tensor, torch.arange(6.0).reshape(2, 3))


def test_a_shared_segment_is_mapped_by_path_and_shows_each_new_pack() -> None:
    """The packer's buffers in a memfd segment: another mapping of its /proc path (what a
    worker on the node makes) reads the packed tensors, and the next pack's values in place."""
    from weight_transport.packing import WeightPacker
    from weight_transport.shared_memory import SharedSegment, map_segment

    weights = {"a": torch.arange(5.0), "b": torch.ones(3, dtype=torch.bfloat16),
               "c": torch.arange(4)}
    segment = SharedSegment()
    packer = WeightPacker(segment)
    packed = packer.pack(weights, version=0)
    mapped = map_segment(segment.path, packed.layout, 0)
    assert all(not buffer.flags.writeable for buffer in mapped.buffers.values())
    assert {n: t.tolist() for n, t in unpack_weights(mapped)} == {
        n: t.tolist() for n, t in weights.items()}
    weights["a"].mul_(-1)
    packer.pack(weights, version=1)
    assert dict(unpack_weights(mapped))["a"].tolist() == [-0.0, -1.0, -2.0, -3.0, -4.0]
