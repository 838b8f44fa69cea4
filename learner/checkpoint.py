"""Checkpoints of the whole learner: weights, optimizer, schedule, RNG and counters.

DeepSpeed writes the model, the (possibly sharded) optimizer state and our LR scheduler; the
learner's counters ride along as DeepSpeed's client state, and each rank adds its own RNG
state, so a resumed run takes exactly the step the uninterrupted run would have taken.
A checkpoint is committed (manifest, then `latest`) only once complete: see
learner.checkpoint_manifest.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from contracts.learner_messages import LearnerState
from learner.checkpoint_manifest import (
    CheckpointError,
    begin_rewrite,
    choose_checkpoint,
    commit_latest,
    model_mismatch,
    write_manifest,
)
from learner.engine import TrainEngine
from learner.model import parameter_shapes


def save_checkpoint(engine: TrainEngine, directory: str | Path, state: LearnerState) -> Path:
    """Write a checkpoint tagged with the policy version; every rank must call this.

    It becomes `latest` only once complete: every rank writes its part (DeepSpeed's files and
    its RNG state), all meet at a barrier, and only then rank 0 writes the manifest and moves
    `latest` (learner.checkpoint_manifest). A job killed midway resumes from the previous one."""
    directory = Path(directory)
    tag = f"version-{state.policy_version}"
    if engine.rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
        begin_rewrite(directory, tag)
    _barrier()  # no rank writes into the tag before its old manifest is gone
    (directory / tag).mkdir(parents=True, exist_ok=True)
    torch.save(rng_state(), directory / tag / f"rng-rank{engine.rank}.pt")
    engine.ds.save_checkpoint(str(directory), tag=tag, save_latest=False,
                              client_state={"learner_state": state.model_dump()})
    _barrier()  # every rank's files are written
    if engine.rank == 0:
        write_manifest(directory / tag, state.policy_version,
                       parameter_shapes(engine.module.backbone))
        commit_latest(directory, tag)
    return directory / tag


def load_checkpoint(engine: TrainEngine, directory: str | Path, tag: str | None = None) -> LearnerState:
    """Restore a checkpoint; every rank must call this. With `tag` None, the one `latest`
    names, or the newest complete one when that is torn (see choose_checkpoint: a
    LearnerGroup chooses once, on the driver, and hands every rank the same tag)."""
    directory = Path(directory)
    tag = tag or choose_checkpoint(directory).tag
    mismatch = model_mismatch(directory / tag, parameter_shapes(engine.module.backbone),
                              "the configured model")
    if mismatch:
        raise CheckpointError(mismatch)
    path, client_state = _deepspeed_load(engine, directory, tag)
    if path is None:
        raise CheckpointError(f"learner checkpoint {directory / tag} could not be loaded")
    set_rng_state(torch.load(directory / tag / f"rng-rank{engine.rank}.pt", weights_only=False))
    return LearnerState.model_validate(client_state["learner_state"])


def _deepspeed_load(engine: TrainEngine, directory: Path, tag: str) -> tuple[Any, dict]:
    """DeepSpeed's load; a checkpoint of another model (one written before manifests recorded
    shapes) fails with a tensor-size error, turned into one line naming the checkpoint."""
    try:
        return engine.ds.load_checkpoint(str(directory), tag=tag, load_optimizer_states=True,
                                         load_lr_scheduler_states=True)
    except RuntimeError as error:
        if "size mismatch" not in str(error):
            raise
        detail = next((line.strip() for line in str(error).splitlines()
                       if "size mismatch" in line and ":" in line), str(error).splitlines()[0])
        raise CheckpointError(f"checkpoint {directory / tag} holds another model than the "
                              f"configured one: {detail}") from None


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
