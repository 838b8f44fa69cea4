"""The weight transport's shape, without Ray: a worker holds one transport for its life, the
rank actor and the worker offer only transport-neutral weight methods, a worker keeps its
mapping of rank 0's segment between publications, and settings import no torch through it."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from contracts.packed_weights import WeightExport, WeightPublication
from weight_transport.base import WeightTransport

WEIGHT_METHODS = {"RankActor": {"export", "send_weights", "latest_weights"},
                  "RolloutWorker": {"receive_weights", "update_weights"}}
"""The only methods about weights each actor offers: none belongs to one transport."""


def _weight_methods(cls: type) -> set[str]:
    words = ("weight", "nccl", "segment", "group", "broadcast", "export", "send")
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_") and any(word in name for word in words)}


def test_rank_actor_and_worker_offer_no_transport_specific_methods() -> None:
    import learner.rank
    from learner.group import LearnerGroup, RankActor
    from rollout_workers.worker import RolloutWorker

    assert _weight_methods(RankActor) == WEIGHT_METHODS["RankActor"]
    assert _weight_methods(RolloutWorker) == WEIGHT_METHODS["RolloutWorker"]
    source = "".join(inspect.getsource(part) for part in (learner.rank, RankActor, LearnerGroup))
    for word in ("SharedSegment", "shared_memory", "nccl", "getattr(self.learner.packer"):
        assert word not in source, word


class _Counting(WeightTransport):
    """A transport that counts its instances and what it received."""

    kind = "object_store"
    publication_type = WeightPublication
    ships_weights = False
    made: list[_Counting] = []

    def __init__(self, ranks_per_engine: int = 1) -> None:
        super().__init__(ranks_per_engine)
        self.received: list[int] = []
        _Counting.made.append(self)

    def publication(self, export: WeightExport, packed_ref: Any, sender: Any) -> WeightPublication:
        return WeightPublication(version=export.version, num_tensors=export.num_tensors,
                                 num_bytes=export.num_bytes)

    def receive(self, engine: Any, publication: WeightPublication) -> int:
        self.received.append(publication.version)
        return publication.num_bytes


@pytest.mark.slow
def test_a_worker_holds_one_transport_for_its_life(tmp_path: Path, monkeypatch) -> None:
    """Made when the worker starts, with its engine; every publication goes through it."""
    import rollout_workers.worker as worker_module
    from contracts.engine_config import RolloutEngineConfig
    from contracts.rollout_config import RolloutConfig
    from rollout_workers.tiny_models import save_tiny_model

    monkeypatch.setattr(worker_module, "make_transport", lambda kind, ranks=1: _Counting(ranks))
    _Counting.made.clear()
    model = save_tiny_model("lm", "0.5m", tmp_path / "lm")
    worker = worker_module.RolloutWorker("w0", RolloutEngineConfig(kind="hf", model=model),
                                         RolloutConfig(), weight_sync="object_store")
    try:
        assert len(_Counting.made) == 1 and worker.transport is _Counting.made[0]
        for version in (1, 2, 3):
            publication = WeightPublication(version=version, num_tensors=1, num_bytes=8)
            assert worker.receive_weights(publication) == version
        assert len(_Counting.made) == 1 and worker.transport.received == [1, 2, 3]
        assert worker.policy_version == 3
    finally:
        worker.shutdown()


def test_a_worker_keeps_its_mapping_of_the_segment_while_rank_0_rewrites_it() -> None:
    """The views a worker made at the first publication show every later one; a new
    segment (another layout) is mapped again."""
    from weight_transport.keeper import WeightKeeper
    from weight_transport.shared_memory import MappedSegment, SharedMemoryPublication

    keeper = WeightKeeper("shared_memory")
    weights = {"a": torch.arange(5.0), "b": torch.ones(3, dtype=torch.bfloat16)}

    def publish(version: int) -> SharedMemoryPublication:
        export = keeper.export(node_id="node")
        return SharedMemoryPublication(segment=export.location, node_id=export.node_id,
                                       layout=export.layout, sender=None, version=version,
                                       num_tensors=export.num_tensors, num_bytes=export.num_bytes)

    keeper.keep(weights, 0)
    first = publish(0)
    mapped = MappedSegment(first)
    weights["a"].mul_(-1)
    keeper.keep(weights, 1)
    second = publish(1)
    assert mapped.holds(second)
    assert dict(mapped.views)["a"].tolist() == [-0.0, -1.0, -2.0, -3.0, -4.0]
    keeper.keep({**weights, "c": torch.zeros(2)}, 2)
    assert not mapped.holds(publish(2))


def test_weight_settings_import_no_torch() -> None:
    """What a config reads from the package (the choices, the refusals, the factory) imports
    neither torch nor Ray."""
    code = ("import sys, weight_transport, weight_transport.choices, weight_transport.nccl;"
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules, "
            "[m for m in ('torch', 'ray') if m in sys.modules]")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[1])
