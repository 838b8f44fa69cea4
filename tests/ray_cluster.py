"""A private local Ray cluster for tests and benchmarks.

Each cluster gets its own short temp dir (Ray's socket paths must stay short) and binds to
loopback; `ray.shutdown()` stops exactly the processes this cluster started, so several
test runs on one machine never touch each other's Ray.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from rollout_workers.ray_runtime import THREAD_ENV


@contextmanager
def local_ray(num_cpus: int = 2) -> Iterator[None]:
    """An embedded Ray cluster with `num_cpus` CPUs, gone (with its temp dir) on exit."""
    os.environ.update(THREAD_ENV)
    temp_dir = tempfile.mkdtemp(prefix="rv-", dir="/tmp")
    ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp_dir,
             _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
