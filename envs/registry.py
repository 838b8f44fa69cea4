"""Every task behind one config type and one constructor.

The rollout machinery builds episodes only through this module, so adding a task means adding
one config model (in contracts/tasks.py, where every task's settings live, so that specs carry
them without importing envs) and one `make_episode` (and, for a task with images, one renderer
registered in envs/images.py). Importing this module imports every task, so every image kind is
registered.
"""

from __future__ import annotations

from contracts.episode import Episode
from contracts.tasks import GPConfig, TaskConfig, VIRLConfig
from envs.general_points import make_episode as make_gp_episode
from envs.images import render_image_ref
from envs.virl import make_episode as make_virl_episode

__all__ = ["make_episode", "render_image_ref"]


def make_episode(config: TaskConfig, seed: int) -> Episode:
    """A new episode of the configured task; the same (config, seed) gives the same episode."""
    if isinstance(config, GPConfig):
        return make_gp_episode(config, seed)
    if isinstance(config, VIRLConfig):
        return make_virl_episode(config, seed)
    raise TypeError(f"no task is registered for config {type(config).__name__}")
