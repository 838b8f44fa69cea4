"""The runtime environment every Revisor actor starts with.

Actors must import this checkout's packages and run one OpenMP thread each (two threads per
process are erratic on small CPU machines; parallelism comes from processes). When the job
was submitted with a working_dir, Ray already ships the code to every node and only the
thread settings are added; on a local cluster the checkout's root goes on PYTHONPATH.
"""

from __future__ import annotations

import os
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
