"""One learner rank: a DeepSpeed engine over the policy, PPO updates, export, checkpoints.

Usable in-process (a single-rank process group) and as the body of each Ray actor of a
`LearnerGroup`; everything here is the same in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from torch import nn

from contracts.learner_messages import LearnerState, UpdateStats
from contracts.packed_weights import PackedWeights
from learner import telemetry
from learner.batch import Turns, turns_from_record_batches, turns_from_table
from learner.checkpoint import load_checkpoint, save_checkpoint
from learner.config import LearnerConfig
from learner.engine import TrainEngine, resolve_dtype
from learner.export import gathered_state_dict, with_tied_aliases
from learner.model import is_vision, load_policy, load_reference, text_config
from learner.ppo_trainer import PPOTrainer
from learner.shard import RankShard
from learner.vision import VisionInputs
from weight_transport.keeper import WeightKeeper


class LearnerRank:
    """The learner state of one data-parallel rank."""

    def __init__(self, config: LearnerConfig) -> None:
        torch.manual_seed(config.seed)
        dtype = resolve_dtype(config.engine)
        model = load_policy(config.model, dtype)
        disable_dropout(model)
        self.config = config
        self.engine = TrainEngine(model, config.optim, config.engine, config.total_optimizer_steps)
        backbone_config = model.backbone.config
        reference = None
        if config.ppo.kl_coef > 0:
            reference = load_reference(config.model, dtype).to(self.engine.device)
        vision = VisionInputs(config.model.path) if is_vision(config.model, backbone_config) else None
        gap = config.max_behaviour_gap
        self.trainer = PPOTrainer(self.engine, config.ppo, pad_id=pad_token_id(backbone_config),
                                  seed=config.seed, reference=reference, vision=vision,
                                  max_gap=gap.bounds(str(dtype).removeprefix("torch."))
                                  if gap is not None else None)
        self.state = LearnerState()
        self.keeper = WeightKeeper(config.weight_sync) if self.engine.rank == 0 else None
        """Rank 0's packed weights, kept between publications (weight_transport.keeper)."""

    def update(self, batches: list[pa.RecordBatch]) -> UpdateStats:
        """One PPO update on finished episodes, all of them this rank's (a one-rank process
        group trains on the whole batch); the policy version goes up by one."""
        from contracts.trajectory import validate_trajectories

        for batch in batches:
            validate_trajectories(batch)
        return self._train(turns_from_record_batches(batches))

    def update_shard(self, shard: RankShard) -> UpdateStats:
        """One PPO update of which this rank trains on `shard` (learner.shard, made from
        batches validated before they were cut); the statistics are the whole batch's."""
        return self._train(turns_from_table(shard.rows), turns_from_table(shard.filler))

    def _train(self, turns: Turns, filler: Turns | None = None) -> UpdateStats:
        stats = self.trainer.update(turns, self.state.policy_version, filler)
        if stats.skipped:
            return stats  # nothing trained: the learner's state and its metrics stay as they were
        self.state = self.state.model_copy(update={
            "policy_version": stats.policy_version, "updates": self.state.updates + 1,
            "turns_trained": self.state.turns_trained + stats.turns,
            "tokens_trained": self.state.tokens_trained + stats.tokens})
        if self.engine.rank == 0:
            telemetry.record_ppo_update(stats)
        return stats

    def export_weights(self, into: dict[str, torch.Tensor] | None = None
                       ) -> dict[str, torch.Tensor] | None:
        """The policy backbone's full weights on rank 0 (None elsewhere), copied into `into`
        when given; all ranks call it."""
        backbone = self.engine.module.backbone
        weights = gathered_state_dict(backbone, keep=self.engine.rank == 0, into=into)
        return with_tied_aliases(backbone, weights) if self.engine.rank == 0 else None

    def pack_weights(self) -> PackedWeights | None:
        """The weights packed for publication on rank 0 (None elsewhere), gathered straight
        into the buffers its keeper kept from the previous publication (made where the
        transport of `weight_sync` says); all ranks call it."""
        weights = self.export_weights(into=self.keeper.targets() if self.keeper else None)
        if weights is None or self.keeper is None:
            return None
        return self.keeper.keep(weights, self.state.policy_version)

    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> str:
        """Checkpoint the learner (every rank must call this); `extra` is the driver's own
        state to keep alongside (its sampler position, say), handed back by `load`."""
        if extra is not None:
            self.state = self.state.model_copy(update={"extra": extra})
        return str(save_checkpoint(self.engine, directory, self.state))

    def load(self, directory: str | Path, tag: str | None = None) -> LearnerState:
        self.state = load_checkpoint(self.engine, directory, tag)
        telemetry.set_policy_version(self.state.policy_version)
        return self.state


def disable_dropout(model: nn.Module) -> None:
    """No dropout anywhere: with it the learner's log-probs are noisy and the ratio is not 1
    before the first step. Covers nn.Dropout modules and config-driven attention dropout."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        config = getattr(module, "config", None)
        for name in list(vars(config)) if config is not None else []:
            if name.endswith("dropout") and isinstance(getattr(config, name), float):
                setattr(config, name, 0.0)


def pad_token_id(config) -> int:
    """Any valid id works (padding is masked out); the model's own pad id when it has one."""
    pad = getattr(text_config(config), "pad_token_id", None)
    return 0 if pad is None else int(pad)
