"""The learner as a group of Ray actors, one DeepSpeed rank each, in one placement group.

The driver hands the group object refs of trajectory record batches. A light Ray task next to
the ranks reads them once and cuts them into one shard per rank (learner.shard: whole groups of
episodes, balanced by tokens), each shard its own object; every rank fetches only its own, so
token data never passes through the driver and no rank reads another's share. After an update
the group publishes the new weights: rank 0 packs the gathered state dict into one buffer per
dtype (contracts.packed_weights.PackedWeights, the same buffers every time) and keeps it
(weight_transport.keeper); the transport of `learner.weight_sync` (weight_transport) says
where those buffers live and how they travel on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel, ConfigDict
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from contracts.learner_messages import LearnerState, UpdateStats
from contracts.metrics import MetricsConfig
from contracts.packed_weights import WeightExport, WeightPublication
from learner.checkpoint_manifest import CheckpointError, choose_checkpoint
from learner.config import LearnerConfig
from learner.engine import DEFAULT_EXTENSIONS_DIR, free_port
from learner.shard import RankShard, ShardReceipt
from learner.shard_task import cut
from weight_transport import make_transport

PROGRESS_POLL_S = 3.0


class UpdateResult(BaseModel):
    """An update's statistics and, when one was due, the weights it published."""

    model_config = ConfigDict(frozen=True)

    stats: UpdateStats
    weights: WeightPublication | None = None
    export_seconds: float = 0.0
    """Time to gather and pack the weights it published (0 when none was due)."""
    shards: list[ShardReceipt] = []
    """What each rank trained on, in rank order (its episodes, turns, tokens, bytes)."""
    batch_bytes: int = 0
    """Arrow bytes of the whole batch: what every rank would fetch without shards."""


class RankActor:
    """The Ray actor body: joins the process group, then trains (PPO or SFT) as one rank."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank_index, self.world_size = rank, world_size
        self.learner: Any = None

    def address(self) -> tuple[str, int]:
        return ray.util.get_node_ip_address(), free_port()

    def join(self, master_addr: str, master_port: int, metrics: MetricsConfig) -> str | None:
        """Join the process group; rank 0 serves the learner's metrics (its address returned)."""
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port),
                          RANK=str(self.rank_index), WORLD_SIZE=str(self.world_size),
                          LOCAL_RANK="0")
        from learner.engine import init_distributed

        init_distributed()
        if self.rank_index != 0:
            return None
        from telemetry.metrics import mark_actor_started, start_metrics_endpoint

        mark_actor_started("learner", "rank-0")
        return start_metrics_endpoint(metrics)

    def start_ppo(self, config: LearnerConfig) -> None:
        from learner.rank import LearnerRank

        self.learner = LearnerRank(config)

    def update(self, shard: RankShard) -> tuple[UpdateStats, ShardReceipt]:
        """One PPO update on this rank's shard (Ray fetched it, and only it, before the call);
        the whole batch's statistics, and what this rank received."""
        return self.learner.update_shard(shard), shard.receipt(self.rank_index)

    def export(self) -> tuple[WeightExport | None, Any]:
        """Gather and pack the weights (all ranks). Rank 0 keeps them and returns what its
        transport says of them (contracts.packed_weights.WeightExport), and the packed
        weights themselves when the transport ships them (Ray copies them into the object
        store as the call returns); other ranks return (None, None)."""
        from learner.telemetry import record_weight_publish

        start = time.perf_counter()
        packed = self.learner.pack_weights()
        if packed is None:
            return None, None
        keeper = self.learner.keeper
        record_weight_publish(packed.version, time.perf_counter() - start, packed.nbytes)
        export = keeper.export(ray.get_runtime_context().get_node_id())
        return export, packed if keeper.ships_weights else None

    def send_weights(self, message: WeightPublication) -> Any:
        """Rank 0's part of a delivery its transport takes part in (an NCCL broadcast of the
        kept weights); its report."""
        return self.learner.keeper.send(message)

    def latest_weights(self) -> Any:
        """The kept packed weights (into the object store), for a worker that cannot take
        them the publication's way (another node, or started between two broadcasts)."""
        return self.learner.keeper.latest()

    def save(self, directory: str, extra: dict[str, Any] | None) -> str:
        return self.learner.save(directory, extra)

    def load(self, directory: str, tag: str | None) -> LearnerState:
        return self.learner.load(directory, tag)

    def state(self) -> LearnerState:
        return self.learner.state

    def run_sft(self, config: Any, hooks: Any = None) -> Any:
        from learner.sft import SFTTrainer

        return SFTTrainer(config, hooks).run()


class LearnerRankLost(RuntimeError):
    """A learner rank's process died (the node lost, killed, out of memory): the update it
    was part of cannot finish, and the job can only go on from a checkpoint."""

    def __init__(self, rank: int, error: Exception) -> None:
        self.rank = rank
        why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        super().__init__(f"learner rank {rank} died ({why[:200]})")


class RankPool:
    """N rank actors placed together (PACK) and joined into one process group."""

    def __init__(self, num_ranks: int, cpus_per_rank: float = 1.0, gpus_per_rank: float = 0.0,
                 metrics: MetricsConfig | None = None, env_vars: dict[str, str] | None = None,
                 resources: dict[str, float] | None = None) -> None:
        # `resources` (cluster.learner_resources): custom Ray resources every rank asks for,
        # so ranks land only on the nodes that advertise them (a KubeRay learner group).
        resources = dict(resources or {})
        bundle = {"CPU": cpus_per_rank, **({"GPU": gpus_per_rank} if gpus_per_rank else {}),
                  **resources}
        self.placement = placement_group([bundle] * num_ranks, strategy="PACK")
        ray.get(self.placement.ready())
        actor = ray.remote(RankActor)
        self.ranks = [
            actor.options(
                num_cpus=cpus_per_rank, num_gpus=gpus_per_rank, resources=resources,
                runtime_env=rank_runtime_env(gpus_per_rank, env_vars),
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.placement, i),
            ).remote(i, num_ranks)
            for i in range(num_ranks)
        ]
        address, port = ray.get(self.ranks[0].address.remote())
        endpoints = ray.get([r.join.remote(address, port, metrics or MetricsConfig())
                             for r in self.ranks])
        self.metrics_endpoint: str | None = endpoints[0]
        """Where rank 0 serves the learner's Prometheus metrics (None when disabled)."""

    def on_every_rank(self, call: Callable[[Any], ray.ObjectRef]) -> list[Any]:
        """Make `call` (a rank actor -> the ref of one of its methods' calls) on every rank at
        once (collectives need all of them) and wait; the results in rank order."""
        return self.gather([call(rank) for rank in self.ranks])

    def gather(self, refs: list[ray.ObjectRef]) -> list[Any]:
        """The results of one call per rank, in rank order. A rank that dies ends the wait at
        once with LearnerRankLost: its peers may be stuck in a collective waiting for it."""
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except ray.exceptions.RayActorError as error:
                raise LearnerRankLost(refs.index(done[0]), error) from None
        return ray.get(refs)

    def shutdown(self) -> None:
        for rank in self.ranks:
            ray.kill(rank)
        remove_placement_group(self.placement)


class LearnerGroup:
    """Driver-side handle of the PPO learner ranks."""

    def __init__(self, config: LearnerConfig, metrics: MetricsConfig | None = None,
                 env_vars: dict[str, str] | None = None,
                 resources: dict[str, float] | None = None) -> None:
        self.config = config
        self.pool = RankPool(config.num_ranks, config.cpus_per_rank, config.gpus_per_rank,
                             metrics, env_vars, resources)
        self.transport = make_transport(config.weight_sync)
        """How publications travel ('auto' resolved once here, and handed to the ranks)."""
        resolved = config.model_copy(update={"weight_sync": self.transport.kind})
        self._node: str = ray.util.placement_group_table(self.pool.placement)["bundles_to_node_id"][0]
        """Rank 0's node, where each update's batch is cut into shards (learner.shard_task)."""
        self.pool.on_every_rank(lambda rank: rank.start_ppo.remote(resolved))
        self._updates = 0

    @property
    def metrics_endpoint(self) -> str | None:
        return self.pool.metrics_endpoint

    def update(self, batch_refs: list[ray.ObjectRef]) -> UpdateResult:
        """One PPO update on the referenced record batches, then a publication when due.

        The batches are read and cut into shards before any rank starts: a batch lost with its
        worker fails the update (ray.exceptions.ObjectLostError) before it changes anything,
        so it can be retried; a malformed one fails it with its TrajectoryError."""
        batch_bytes, shard_refs = cut(list(batch_refs), self.config.num_ranks, self._node)
        replies = self.pool.gather([rank.update.remote(shard)
                                    for rank, shard in zip(self.pool.ranks, shard_refs, strict=True)])
        result = UpdateResult(stats=replies[0][0], shards=[receipt for _, receipt in replies],
                              batch_bytes=batch_bytes)
        if result.stats.skipped:
            return result  # nothing trained, nothing new to publish
        self._updates += 1
        if self._updates % self.config.publish_every:
            return result
        began = time.perf_counter()
        weights = self.publish()
        return result.model_copy(update={"weights": weights,
                                         "export_seconds": time.perf_counter() - began})

    def publish(self, version: int | None = None) -> WeightPublication:
        """Gather the full weights (a collective under ZeRO-3) and publish them the way
        `learner.weight_sync` says (weight_transport). `version`, when given,
        is checked against the learner's own: publishing weights under the wrong version
        would mislabel every trajectory sampled with them."""
        publication = self.transport.publish(self.pool)
        _check_version(version, publication.version)
        return publication.model_copy(update={"sync_timeout_s": self.config.weight_sync_timeout_s})

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> str:
        """Checkpoint every rank's state (sharded optimizer included) under the policy version."""
        return self.pool.on_every_rank(
            lambda rank: rank.save.remote(str(directory), extra))[0]

    def load(self, directory: str | Path, tag: str | None = None) -> LearnerState:
        """Restore every rank from one checkpoint: `tag`, or the one choose_checkpoint picks
        here, once (ranks choosing on their own could disagree while files change). A
        checkpoint that does not fit the model fails with its one-line CheckpointError, not
        with a rank's traceback."""
        tag = tag or choose_checkpoint(directory).tag
        try:
            return self.pool.on_every_rank(
                lambda rank: rank.load.remote(str(directory), tag))[0]
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, CheckpointError):
                raise CheckpointError(str(error.cause)) from None
            raise

    def state(self) -> LearnerState:
        return ray.get(self.pool.ranks[0].state.remote())

    def shutdown(self) -> None:
        self.pool.shutdown()


def _check_version(wanted: int | None, exported: int) -> None:
    if wanted is not None and wanted != exported:
        raise ValueError(f"asked to publish version {wanted}, but the learner's weights "
                         f"are version {exported}")


def run_sft_on_ranks(config: Any, num_ranks: int = 1, cpus_per_rank: float = 1.0,
                     gpus_per_rank: float = 0.0, hooks: Any = None,
                     metrics: MetricsConfig | None = None,
                     on_progress: Callable[[], None] | None = None,
                     resources: dict[str, float] | None = None) -> Any:
    """SFT (learner.sft.SFTConfig) data-parallel over `num_ranks` Ray actors; rank 0's
    SFTResult. Every rank sees the same global batches, split between them. `on_progress` is
    called every few seconds while they train (to relay their progress). `resources`: the
    custom Ray resources each rank asks for (cluster.learner_resources), as PPO's ranks."""
    pool = RankPool(num_ranks, cpus_per_rank, gpus_per_rank, metrics, resources=resources)
    try:
        refs = [rank.run_sft.remote(config, hooks) for rank in pool.ranks]
        while len(ray.wait(refs, num_returns=len(refs), timeout=PROGRESS_POLL_S)[0]) < len(refs):
            if on_progress:
                on_progress()
        if on_progress:
            on_progress()
        return ray.get(refs)[0]
    finally:
        pool.shutdown()


def rank_runtime_env(gpus_per_rank: float, env_vars: dict[str, str] | None = None
                     ) -> dict[str, Any]:
    """The Ray runtime env of a process that runs a learner rank: where DeepSpeed finds its
    prebuilt ops, and its CPU accelerator when the rank has no GPU."""
    from rollout_workers.ray_runtime import actor_runtime_env

    variables = {"TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR",
                                                        str(DEFAULT_EXTENSIONS_DIR))}
    if not gpus_per_rank:
        variables["DS_ACCELERATOR"] = "cpu"
    variables.update(env_vars or {})
    return actor_runtime_env(variables)
