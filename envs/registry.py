"""Every task behind one config type and one constructor.

The rollout machinery, the config file and the trajectory schema name tasks only through
this module, so adding a task means adding one config model and one `make_episode` (and,
for a task with images, one renderer registered in envs/images.py). Importing this module
imports every task, so every image kind is registered.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from contracts.episode import Episode
from envs.general_points import GPConfig
from envs.general_points import make_episode as make_gp_episode
from envs.images import render_image_ref
from envs.virl import VIRLConfig
from envs.virl import make_episode as make_virl_episode

TaskConfig = Annotated[GPConfig | VIRLConfig, Field(discriminator="task")]
"""A task's settings, chosen by its `task` field ('gp' or 'virl')."""

__all__ = ["TaskConfig", "make_episode", "render_image_ref"]


def make_episode(config: TaskConfig, seed: int) -> Episode:
    """A new episode of the configured task; the same (config, seed) gives the same episode."""
    if isinstance(config, GPConfig):
        return make_gp_episode(config, seed)
    if isinstance(config, VIRLConfig):
        return make_virl_episode(config, seed)
    raise TypeError(f"no task is registered for config {type(config).__name__}")
