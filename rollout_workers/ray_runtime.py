"""How Revisor runs Ray: the runtime environment of every actor, and private local clusters.

Actors must import this checkout's packages and run one OpenMP thread each (two threads per
process are erratic on small CPU machines; parallelism comes from processes). When the job
was submitted with a working_dir, Ray already ships the code to every node and only the
thread settings are added; on a local cluster the checkout's root goes on PYTHONPATH.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def actor_runtime_env(env_vars: dict[str, str] | None = None) -> dict[str, Any]:
    """A runtime_env for `.options(runtime_env=...)`: this checkout importable, one thread."""
    variables = dict(THREAD_ENV)
    if not _job_ships_code():
        paths = [str(PROJECT_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        variables["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    variables.update(env_vars or {})
    return {"env_vars": variables}


def _job_ships_code() -> bool:
    import ray

    if not ray.is_initialized():
        return False
    job_env = ray.get_runtime_context().runtime_env or {}
    return bool(job_env.get("working_dir") or job_env.get("py_modules"))


@contextmanager
def local_cluster(num_cpus: int = 2) -> Iterator[None]:
    """An embedded Ray cluster of `num_cpus` CPUs for tests, benchmarks and laptops.

    It gets its own short temp dir (Ray's socket paths must stay short) and binds to
    loopback; on exit `ray.shutdown()` stops exactly the processes it started and the temp
    dir goes, so runs sharing a machine never touch each other's Ray.
    """
    import ray

    os.environ.update(THREAD_ENV)
    temp_dir = tempfile.mkdtemp(prefix="rv-", dir="/tmp")
    ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp_dir,
             _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
