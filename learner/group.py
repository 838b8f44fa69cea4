"""The learner as a group of Ray actors, one DeepSpeed rank each, in one placement group.

The driver hands the group object refs of trajectory record batches; every rank fetches them
from the object store itself, so token data never passes through the driver. After an update
the group publishes the new weights: rank 0 packs the gathered state dict into one buffer per
dtype (rollout_workers.weights.PackedWeights) and returns it as the result of one remote call,
which leaves it in the object store; the driver hands on only its ref, and every reader on a
node maps the same buffers without copying.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from learner.checkpoint import LearnerState
from learner.config import LearnerConfig
from learner.engine import _DEFAULT_EXTENSIONS_DIR
from learner.export import WeightPublication
from learner.ppo_trainer import UpdateStats


class UpdateResult(BaseModel):
    """An update's statistics and, when one was due, the weights it published."""

    model_config = ConfigDict(frozen=True)

    stats: UpdateStats
    weights: WeightPublication | None = None


class RankActor:
    """The Ray actor body: joins the process group, then wraps a LearnerRank."""

    def __init__(self, config: LearnerConfig, rank: int, world_size: int) -> None:
        self.config, self.rank_index, self.world_size = config, rank, world_size
        self.rank = None

    def address(self) -> tuple[str, int]:
        from learner.engine import _free_port

        return ray.util.get_node_ip_address(), _free_port()

    def setup(self, master_addr: str, master_port: int) -> None:
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port),
                          RANK=str(self.rank_index), WORLD_SIZE=str(self.world_size),
                          LOCAL_RANK="0")
        from learner.rank import LearnerRank

        self.rank = LearnerRank(self.config)

    def update(self, batch_refs: list[ray.ObjectRef]) -> UpdateStats:
        return self.rank.update(ray.get(batch_refs))

    def export(self) -> tuple[dict[str, int], Any]:
        from rollout_workers.weights import pack_weights

        weights = self.rank.export_weights()
        if weights is None:
            return {}, None
        packed = pack_weights(weights, self.rank.state.policy_version)
        return {"version": packed.version, "num_tensors": len(weights),
                "num_bytes": packed.nbytes}, packed

    def save(self, directory: str) -> str:
        return self.rank.save(directory)

    def load(self, directory: str, tag: str | None) -> LearnerState:
        return self.rank.load(directory, tag)

    def state(self) -> LearnerState:
        return self.rank.state


class LearnerGroup:
    """Driver-side handle of the learner ranks."""

    def __init__(self, config: LearnerConfig, env_vars: dict[str, str] | None = None) -> None:
        self.config = config
        n = config.num_ranks
        bundle = {"CPU": config.cpus_per_rank, **({"GPU": config.gpus_per_rank}
                                                 if config.gpus_per_rank else {})}
        self.placement = placement_group([bundle] * n, strategy="PACK")
        ray.get(self.placement.ready())
        actor = ray.remote(RankActor)
        self.ranks = [
            actor.options(
                num_cpus=config.cpus_per_rank, num_gpus=config.gpus_per_rank,
                runtime_env=_runtime_env(config, env_vars),
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.placement, i),
            ).remote(config, i, n)
            for i in range(n)
        ]
        address, port = ray.get(self.ranks[0].address.remote())
        ray.get([r.setup.remote(address, port) for r in self.ranks])
        self._updates = 0

    def update(self, batch_refs: list[ray.ObjectRef]) -> UpdateResult:
        """One PPO update on the referenced record batches, then a publication when due."""
        stats = ray.get([r.update.remote(list(batch_refs)) for r in self.ranks])[0]
        self._updates += 1
        due = self._updates % self.config.publish_every == 0
        return UpdateResult(stats=stats, weights=self.publish() if due else None)

    def publish(self) -> WeightPublication:
        """Gather the full weights (a collective under ZeRO-3) and leave them, packed, in the
        object store, owned by the driver."""
        calls = [r.export.options(num_returns=2).remote() for r in self.ranks]
        infos = ray.get([info for info, _ in calls])
        return WeightPublication(ref=calls[0][1], **infos[0])

    def save(self, directory: str | Path) -> str:
        return ray.get([r.save.remote(str(directory)) for r in self.ranks])[0]

    def load(self, directory: str | Path, tag: str | None = None) -> LearnerState:
        return ray.get([r.load.remote(str(directory), tag) for r in self.ranks])[0]

    def state(self) -> LearnerState:
        return ray.get(self.ranks[0].state.remote())

    def shutdown(self) -> None:
        for rank in self.ranks:
            ray.kill(rank)
        remove_placement_group(self.placement)


def _runtime_env(config: LearnerConfig, env_vars: dict[str, str] | None) -> dict[str, Any]:
    from rollout_workers.ray_runtime import actor_runtime_env

    variables = {"TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR",
                                                        str(_DEFAULT_EXTENSIONS_DIR))}
    if not config.gpus_per_rank:
        variables["DS_ACCELERATOR"] = "cpu"
    variables.update(env_vars or {})
    return actor_runtime_env(variables)
