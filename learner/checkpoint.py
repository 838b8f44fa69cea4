"""Checkpoints of the whole learner: weights, optimizer, schedule, RNG and counters.

DeepSpeed writes the model, the (possibly sharded) optimizer state and our LR scheduler; the
learner's counters ride along as DeepSpeed's client state, and each rank adds its own RNG
state, so a resumed run takes exactly the step the uninterrupted run would have taken.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel

from learner.engine import TrainEngine


class LearnerState(BaseModel):
    """Counters that make a run resumable (everything except tensors)."""

    policy_version: int = 0
    """Updates applied so far; the version of the current weights."""
    updates: int = 0
    turns_trained: int = 0
    tokens_trained: int = 0
    extra: dict[str, Any] = {}
    """Whatever the driver needs back on resume (e.g. its episode sampler's position)."""


def save_checkpoint(engine: TrainEngine, directory: str | Path, state: LearnerState) -> Path:
    """Write a checkpoint tagged with the policy version; every rank must call this."""
    directory = Path(directory)
    tag = f"version-{state.policy_version}"
    # The RNG state first: DeepSpeed points `latest` at the tag last, so a run interrupted
    # while saving resumes from the previous checkpoint, never from a partial one.
    (directory / tag).mkdir(parents=True, exist_ok=True)
    torch.save(rng_state(), directory / tag / f"rng-rank{engine.rank}.pt")
    engine.ds.save_checkpoint(str(directory), tag=tag,
                              client_state={"learner_state": state.model_dump()})
    return directory / tag


def load_checkpoint(engine: TrainEngine, directory: str | Path, tag: str | None = None) -> LearnerState:
    """Restore a checkpoint (the latest when `tag` is None); every rank must call this."""
    directory = Path(directory)
    latest = directory / "latest"
    if tag is None and not latest.exists():
        raise FileNotFoundError(f"no learner checkpoint in {directory}")
    tag = tag or latest.read_text().strip()
    path, client_state = engine.ds.load_checkpoint(
        str(directory), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True)
    if path is None:
        raise FileNotFoundError(f"learner checkpoint {directory / tag} could not be loaded")
    set_rng_state(torch.load(directory / tag / f"rng-rank{engine.rank}.pt", weights_only=False))
    return LearnerState.model_validate(client_state["learner_state"])


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
