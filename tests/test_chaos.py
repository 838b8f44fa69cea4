"""A job under fire: a rollout worker stopped (hung), another killed, an env actor killed,
each at a seeded random moment while the job trains. The job must finish every update on
exactly its episodes, each trained once, and count what was done to it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from cluster.main import main as job_main
from cluster.results.evaluations import read_training_log
from tests.jobs import process_gone, process_title, small_job

SEED = 20_261_130
"""Seeds the moments of the faults: a failure replays with the same timeline."""
UPDATES, PER_UPDATE, TIMEOUT_S = 6, 8, 15


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_job_survives_a_hung_worker_a_killed_worker_and_a_killed_env_actor(tmp_path, capsys):
    run, name = tmp_path / "run", "chaos"
    args = small_job(run, name, f"training.updates={UPDATES}", "training.checkpoint_every=0",
                     "rollout.env_actors=1", f"cluster.worker_timeout_s={TIMEOUT_S}")
    result: dict = {}
    job = threading.Thread(target=lambda: result.setdefault("code", job_main(args)))
    job.start()
    try:
        done = _faults(run, name, job, random.Random(SEED))
    finally:
        job.join(timeout=840)
    out = capsys.readouterr().out
    assert not job.is_alive() and result.get("code") == 0, out[-3000:]
    assert done["stopped_gone"], "the stopped worker was not killed: " + out[-3000:]

    rows = read_training_log(run)
    assert [row["episodes"] for row in rows] == [PER_UPDATE] * UPDATES
    summary = json.loads((run / "summary.json").read_text())
    assert summary["worker_restarts"] == 2 and summary["env_actor_restarts"] == 1, summary
    episodes = summary["episodes"]
    assert episodes["completed"] == UPDATES * PER_UPDATE and episodes["duplicates_rejected"] == 0
    assert episodes["issued"] == episodes["completed"] + episodes["reissued"], episodes
    assert f"rollout worker {done['stopped']} hung" in out and "cluster.worker_timeout_s" in out


def _faults(run: Path, name: str, job: threading.Thread, rng: random.Random) -> dict:
    """Stop rollout-0 after update 1, kill rollout-1 after the next update, and kill an env
    actor after the one after that, each a random 0-2 s later; returns what was done."""
    import ray

    _wait_for_more_updates(run, job, rng)
    stopped = ray.get_actor(f"{name}-rollout-0")
    pid = ray.get(stopped.stats.remote()).pid
    os.kill(pid, signal.SIGSTOP)
    stopped_gone = process_gone(pid, within_s=TIMEOUT_S + 90)
    _wait_for_more_updates(run, job, rng)
    ray.kill(ray.get_actor(f"{name}-rollout-1"), no_restart=True)
    _wait_for_more_updates(run, job, rng)
    env_actor = rng.choice(_processes("ray::EnvActor", count=2))
    env_actor.kill()
    return {"stopped": "rollout-0", "stopped_gone": stopped_gone}


def _wait_for_more_updates(run: Path, job: threading.Thread, rng: random.Random) -> None:
    """Until the job logs one more update than it has now, then a random 0-2 s."""
    count = len(read_training_log(run)) + 1
    deadline = time.monotonic() + 600
    while len(read_training_log(run)) < count:
        assert job.is_alive() and time.monotonic() < deadline, f"the job did not reach update {count}"
        time.sleep(0.2)
    time.sleep(rng.uniform(0, 2))


def _processes(title: str, count: int, within_s: float = 120) -> list[psutil.Process]:
    """This test's `count` Ray processes titled `title` (say the env actors of two workers),
    once exactly those run: the env actors of replaced workers die with them, but not at once,
    and killing one of those would test nothing."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = [p for p, t in _titled() if t.startswith(title) and _running(p)]
        if len(found) == count:
            return sorted(found, key=lambda p: p.pid)
        time.sleep(0.5)
    raise AssertionError(f"not {count} processes titled {title}: {[t for _, t in _titled()]}")


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _titled() -> list[tuple[psutil.Process, str]]:
    """This test's processes (its Ray cluster's) with their titles."""
    return [(p, process_title(p)) for p in psutil.Process().children(recursive=True)]
