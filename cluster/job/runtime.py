"""Joining or starting the Ray cluster a job runs on.

Inside `ray job submit` the job's driver joins the cluster that runs it; on a laptop or in CI
the same entry point starts an embedded cluster bound to loopback, with a temp dir of its
own (Ray's socket paths must stay short) that goes when the job ends.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import ray

from cluster.settings.experiment import ClusterConfig
from cluster.settings.loading import SettingsError
from rollout_workers.ray_runtime import THREAD_ENV, local_cluster

Result = TypeVar("Result")


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


class JobFailed(RuntimeError):
    """A failure the job can explain in one line, with what to do next (exit status 1)."""


def run_command(prog: str, job: Callable[[], Result]) -> tuple[int, Result | None]:
    """Run a job as a command: (0, its result), (2, None) after printing a settings error, or
    (1, None) after printing why the job failed (JobFailed).
    `ray job stop` (SIGTERM) and Ctrl-C unwind it, so its actors and the embedded cluster
    are released."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return 0, job()
    except SettingsError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2, None
    except JobFailed as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1, None
    finally:
        if ray.is_initialized():
            ray.shutdown()
