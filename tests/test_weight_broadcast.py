"""The NCCL weight path, as far as it runs without a GPU: the layout a receiver gets, the
broadcast of packed buffers (over gloo, with the very functions the NCCL path calls), the
settings that choose the path, and a clear refusal where there is no CUDA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks.weight_sync_gpu import GpuSyncSettings
from benchmarks.weight_sync_gpu import run as run_broadcast
from cluster.settings.experiment import ClusterConfig, ExperimentConfig
from contracts.packed_weights import WeightLayout
from learner.config import LearnerConfig, ModelConfig
from weight_transport import make_transport
from weight_transport.choices import resolve
from weight_transport.keeper import WeightKeeper
from weight_transport.nccl_broadcast import require_cuda
from weight_transport.nccl_sender import WeightSender
from weight_transport.packing import pack_weights, unpack_weights

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")


def _mixed_state_dict() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"embed.weight": torch.randn(7, 4, generator=g),
            "norm.weight": torch.randn(4, generator=g).to(torch.bfloat16),
            "empty": torch.empty(0, 3),
            "layer.weight": torch.randn(3, 4, generator=g),
            "positions": torch.arange(5)}


def test_layout_survives_json_and_places_every_tensor() -> None:
    """The layout crosses vLLM's RPC as plain data; a receiver's buffers of its sizes, cut
    by its entries, give back every tensor."""
    weights = _mixed_state_dict()
    packed = pack_weights(weights, version=3)
    layout = WeightLayout.from_dict(json.loads(json.dumps(packed.layout.to_dict())))
    assert layout == packed.layout
    assert layout.sizes == {"float32": 4 * (28 + 12), "bfloat16": 8, "int64": 40}
    assert layout.nbytes == packed.nbytes
    for (name, tensor), entry in zip(unpack_weights(packed), layout.entries, strict=True):
        assert (entry.name, entry.dtype, entry.shape) == (
            name, str(weights[name].dtype).removeprefix("torch."), tuple(weights[name].shape))
        assert torch.equal(tensor, weights[name])


@pytest.mark.slow
def test_broadcast_of_packed_buffers_reaches_every_receiver_bit_for_bit() -> None:
    """Rank 0 packs a Llama state dict (float32 and bfloat16 buffers) and sends it with
    send_packed; two receivers take it with receive_packed and compare every tensor."""
    settings = GpuSyncSettings(world=3, backend="gloo", device="cpu", repeats=1, hidden_size=64,
                               num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=96)
    result = run_broadcast(settings)
    assert result["backend"] == "gloo" and result["devices"] == ["cpu"] * 3
    assert set(result["buffers"]) == {"float32", "bfloat16"}
    assert result["mismatched"] == [] and result["all_equal"]


def test_auto_is_the_default_and_nccl_needs_gpu_ranks() -> None:
    """'auto' maps rank 0's buffers on a one-node cluster and uses the object store across
    nodes; it never picks NCCL."""
    model = ModelConfig(path="unused")
    assert LearnerConfig(model=model).weight_sync == "auto"
    assert resolve("auto", nodes=1) == "shared_memory"
    assert resolve("auto", nodes=3) == "object_store"
    assert resolve("nccl", nodes=1) == "nccl"
    with pytest.raises(ValueError, match="weight_sync='nccl' broadcasts from learner rank 0's GPU"):
        LearnerConfig(model=model, weight_sync="nccl")
    assert LearnerConfig(model=model, weight_sync="nccl", gpus_per_rank=1).weight_sync == "nccl"


@pytest.mark.parametrize(("engine", "gpus_per_worker", "allowed"), [
    ("vllm", 1.0, True), ("vllm", 0.0, False), ("hf", 1.0, False)])
def test_experiment_allows_nccl_only_into_gpu_vllm_engines(engine: str, gpus_per_worker: float,
                                                          allowed: bool) -> None:
    data = {"model": "unused", "engine": {"kind": engine},
            "learner": {"weight_sync": "nccl", "gpus_per_rank": 1, "ppo": {"temperature": 1.0}},
            "cluster": {"gpus_per_worker": gpus_per_worker}}
    if allowed:
        assert ExperimentConfig(**data).learner.weight_sync == "nccl"
    else:
        with pytest.raises(ValueError, match="needs engine.kind 'vllm' and cluster.gpus_per_worker"):
            ExperimentConfig(**data)


def test_group_ranks_follow_the_learner_engine_by_engine() -> None:
    """Rank 0 is the learner; each engine's tensor-parallel workers take consecutive ranks."""
    group = make_transport("nccl", ranks_per_engine=2).group
    assert [group.rank_offset(i) for i in range(3)] == [1, 3, 5]
    assert group.rendezvous("10.0.0.1", 29500, engines=3)["world_size"] == 7


def test_keeper_keeps_one_version_whatever_the_transport() -> None:
    """Rank 0's keeper, not the NCCL sender, holds the packed weights."""
    sender = WeightKeeper("nccl")
    with pytest.raises(RuntimeError, match="exported no weights yet"):
        sender.latest()
    sender.keep(_mixed_state_dict(), version=4)
    assert sender.latest(4).version == 4
    with pytest.raises(ValueError, match="asked for weights version 5, but rank 0 keeps version 4"):
        sender.latest(5)


@no_cuda
def test_nccl_is_refused_without_cuda_naming_the_fix() -> None:
    with pytest.raises(RuntimeError, match="weight_sync='nccl' needs CUDA on the learner rank 0"):
        WeightSender().open({"host": "127.0.0.1", "port": 1, "world_size": 2})
    with pytest.raises(RuntimeError, match="Use weight_sync='object_store'"):
        require_cuda("rollout engine")


@no_cuda
@pytest.mark.slow
def test_vllm_engine_refuses_to_join_a_weight_group_without_cuda(tmp_path: Path) -> None:
    """Through the real worker extension of a vLLM CPU engine, which keeps serving."""
    from contracts.engine import GenerationRequest, SamplingSettings
    from contracts.engine_config import RolloutEngineConfig
    from rollout_workers.engine import make_engine
    from rollout_workers.tiny_models import save_tiny_model

    config = RolloutEngineConfig(model=save_tiny_model("lm", "0.5m", tmp_path / "lm"),
                          kv_cache_bytes=16 << 20, max_model_len=256)
    with make_engine(config) as engine:
        with pytest.raises(Exception, match="needs CUDA on the rollout engine"):
            engine.join_weight_group({"host": "127.0.0.1", "port": 1, "world_size": 2}, 1)
        layout = pack_weights(_mixed_state_dict(), version=1).layout.to_dict()
        with pytest.raises(Exception, match="has not joined a weight group"):
            engine.receive_weights(layout, 1)
        assert engine.version == 0
        out = engine.generate([GenerationRequest(prompt_ids=[1, 2, 3])],
                              SamplingSettings(max_tokens=4, seed=0))
        assert len(out[0].token_ids) >= 1


def test_fleet_delivers_through_the_transport_of_its_weight_sync(tmp_path: Path) -> None:
    """An NCCL fleet hands a publication to its weight group (no workers yet: no group is
    formed); each setting makes its own transport, and a worker receives through the same one."""
    from cluster.job.fleet import WorkerFleet
    from contracts.engine_config import RolloutEngineConfig
    from contracts.rollout_config import RolloutConfig
    from weight_transport.nccl import NcclPublication, NcclTransport
    from weight_transport.object_store import ObjectStoreTransport

    fleet = WorkerFleet(broker=None, cluster=ClusterConfig(),
                        engine=RolloutEngineConfig(model=tmp_path, tensor_parallel_size=2),
                        rollout=RolloutConfig(), weight_sync="nccl", name_prefix="revisor")
    assert isinstance(fleet.transport, NcclTransport)
    assert fleet.transport.group.ranks_per_engine == 2
    packed = pack_weights(_mixed_state_dict(), version=2)
    fleet.publish(NcclPublication(version=2, layout=packed.layout.to_dict(), sender=None,
                                  num_tensors=len(packed.entries), num_bytes=packed.nbytes))
    assert fleet.latest.version == 2 and fleet.transport.group.generation == 0
    assert isinstance(make_transport("object_store"), ObjectStoreTransport)
    with pytest.raises(RuntimeError, match="weight_sync='nccl' needs the vLLM engine"):
        make_transport("nccl").receive(object(), NcclPublication(
            version=2, layout=packed.layout.to_dict(), sender=None, num_tensors=1,
            num_bytes=packed.nbytes, rendezvous={"host": "h", "port": 1, "world_size": 2}))


def test_a_late_rank_is_named_by_the_worker_whose_engine_holds_it() -> None:
    group = make_transport("nccl", ranks_per_engine=2).group
    group.worker_ids = ("rollout-0", "rollout-3", "rollout-4")
    assert group.workers_of([2, 3, 4]) == ["rollout-0", "rollout-3"]  # ranks 1-2, 3-4, 5-6
    assert group.workers_of([5]) == ["rollout-4"]
    assert group.workers_of([]) == []


def _deadline_member(rank: int, port: int, ack_port: int, out: str) -> None:
    """One process of a three-rank gloo group: rank 0 sends with a 2 s limit, rank 1 takes the
    broadcast and confirms it, rank 2 never joins it. Then ranks 0 and 1 form a group without
    rank 2 and publish again. Each writes what it saw to `out`."""
    import os
    import time

    import torch.distributed as dist

    from weight_transport.nccl_broadcast import TorchBroadcaster, receive_packed
    from weight_transport.nccl_deadline import AckBoard, send_within

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=3)
    # One buffer: gloo's rank 0 runs one broadcast at a time and waits for every peer, so with
    # several a member that never joins holds up the others' later buffers too (they are then
    # named as well: they did not get the weights either).
    weights = {"layer.weight": torch.arange(12.0).reshape(3, 4)}
    packed, cpu = pack_weights(weights, version=1), torch.device("cpu")
    acks, seen = AckBoard("127.0.0.1", ack_port, serve=rank == 0), {}
    for attempt, members in enumerate(([0, 1, 2], [0, 1])):
        group = None if attempt == 0 else dist.new_group(members)  # every rank takes part
        if rank == 0:
            began = time.monotonic()
            seen[f"missing-{attempt}"] = send_within(TorchBroadcaster(group, async_op=True),
                                                     packed, cpu, acks, members[1:], 2.0)
            seen[f"seconds-{attempt}"] = time.monotonic() - began
        elif rank == 1:
            got = receive_packed(TorchBroadcaster(group), packed.layout, cpu)
            acks.confirm(rank, 1)
            seen[f"equal-{attempt}"] = all(torch.equal(t, weights[n]) for n, t in got)
    if rank == 2:
        time.sleep(3)  # alive and in the group, but never in the broadcast: rank 0 must not wait
    Path(out, f"{rank}.json").write_text(json.dumps(seen))
    os._exit(0)  # rank 0's broadcast to rank 2 never completes: leave without tearing it down


@pytest.mark.slow
def test_a_broadcast_member_that_never_joins_is_named_within_the_time_limit(tmp_path: Path) -> None:
    """weight_transport.nccl_deadline over gloo, as over NCCL in a job: rank 0 returns within
    the 2 s limit naming rank 2, which never took part; the group formed again without it
    delivers the next publication at once."""
    import torch.multiprocessing as mp

    from learner.engine import free_port

    mp.spawn(_deadline_member, args=(free_port(), free_port(), str(tmp_path)), nprocs=3)
    sender, receiver = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    print(f"rank 0 gave up after {sender['seconds-0']:.2f} s; the group without rank 2 took "
          f"{sender['seconds-1']:.3f} s")
    assert sender["missing-0"] == [2] and 2.0 <= sender["seconds-0"] < 4.0
    assert sender["missing-1"] == [] and sender["seconds-1"] < 2.0
    assert receiver == {"equal-0": True, "equal-1": True}
