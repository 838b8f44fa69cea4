"""Joining or starting the Ray cluster a job runs on.

Inside `ray job submit` the job's driver joins the cluster that runs it; on a laptop or in CI
the same entry point starts an embedded cluster bound to loopback, with a temp dir of its
own (Ray's socket paths must stay short) that goes when the job ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import ray

from cluster.config import ClusterConfig
from rollout_workers.ray_runtime import THREAD_ENV, local_cluster


def inside_submitted_job() -> bool:
    """Whether this process is the driver of a job submitted to a running cluster."""
    return bool(os.environ.get("RAY_ADDRESS") or os.environ.get("RAY_JOB_ID"))


@contextmanager
def ray_cluster(config: ClusterConfig) -> Iterator[None]:
    """Connected to the configured cluster for the duration of the block."""
    os.environ.update(THREAD_ENV)
    embedded = config.address == "local" or (config.address is None and not inside_submitted_job())
    if not embedded:
        ray.init(address=config.address or "auto", log_to_driver=True)
        try:
            yield
        finally:
            ray.shutdown()
        return
    with local_cluster(config.num_cpus or os.cpu_count() or 1):
        yield
