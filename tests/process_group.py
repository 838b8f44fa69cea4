"""The one-rank process group of tests that build DeepSpeed learners in-process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(scope="module", autouse=True)
def own_process_group() -> Iterator[None]:
    """In-process learners make this process a (one-rank) process group; it ends with the
    module that imports this fixture. Left behind, the next in-process vLLM engine takes it
    over and destroys it, and every DeepSpeed learner after that fails."""
    saved = {key: os.environ.get(key) for key in DIST_ENV}
    yield
    import deepspeed.comm as ds_comm
    import torch.distributed as dist

    if dist.is_initialized():
        ds_comm.destroy_process_group()  # DeepSpeed forgets its cached groups too
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
