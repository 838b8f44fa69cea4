"""Helpers of the job-level tests: small pinned job settings, jobs run as subprocesses, waits.

A job runs as `python -m cluster.main` in a process group of its own, exactly as a user starts
it, so a test can interrupt it for real and nothing it started outlives the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cluster.results.evaluations import read_training_log

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "cpu_demo.yaml"
SHORT_RUN = ["training.updates=2", "training.episodes_per_update=16", "training.checkpoint_every=1",
             "evaluation.episodes=8", "sft.steps=10", "sft.train_episodes=64",
             "rollout.episodes_in_flight=16"]
"""A short demo job with its SFT warm start (tests/test_job.py)."""
TWO_ATTEMPTS = "{task: gp, rule: id, max_attempts: 2}"
SMALL_RL = [
    "tiny_model.size=0.5m", "tiny_model.seed=0", "sft=null", f"task={TWO_ATTEMPTS}",
    "rollout.sampling.max_tokens=32", "rollout.sampling.temperature=1.0", "rollout.sampling.seed=0",
    "learner.ppo.temperature=1.0", "learner.ppo.max_staleness=0", "learner.publish_every=1",
    "rollout.episodes_in_flight=8", "rollout.episodes_per_batch=4",
    "training.episodes_per_update=8", "training.seed=0", "training.eval_every=0",
    "training.queue_capacity=16", "evaluation.episodes=4", f"evaluation.splits={{id: {TWO_ATTEMPTS}}}",
    "evaluation.split_temperatures={}",
    "cluster.address=local", "cluster.num_cpus=4", "cluster.cpus_per_worker=1",
    "learner.num_ranks=1", "learner.cpus_per_rank=1",
]
"""RL straight from a tiny model (no SFT), every setting the job tests depend on pinned here
(the demo config is tuned for the demo): 8 two-attempt episodes per update, on-policy, room
for two rollout workers and the learner on 4 CPUs."""
JOB_TIMEOUT_S = 840
"""Under pytest-timeout's 900 s: a loaded machine that also builds DeepSpeed's ops is slow."""


def job_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
            "DS_ACCELERATOR": "cpu", "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONUNBUFFERED": "1"}


def small_job(run: Path, name: str, *overrides: str) -> list[str]:
    """Arguments of `python -m cluster.main` for a small RL job in `run`."""
    return ["--config", str(DEMO), f"run_dir={run}", f"model={run.parent / 'model'}", f"name={name}",
            *SMALL_RL, *overrides]


def start_job(args: list[str], log: Path, command: tuple[str, ...] = ("cluster.main",)
              ) -> subprocess.Popen:
    """`python -m cluster.main ARGS` (or another `command`, say `cluster.cli study`) in its
    own process group, output to `log`."""
    module, *subcommand = command
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", module, *subcommand, *args], cwd=ROOT,
                                env=job_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def run_job(args: list[str], log: Path, command: tuple[str, ...] = ("cluster.main",)) -> None:
    """Run a job to its end; fails the test, showing the job's output, if it does not succeed."""
    finish(start_job(args, log, command), log)


def finish(job: subprocess.Popen, log: Path, timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Wait for the job's end; a job still running when waiting fails is interrupted."""
    try:
        code = job.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the job ran past {timeout_s} s:\n{tail(log)}") from None
    finally:
        interrupt(job)
    assert code == 0, f"the job exited with {code}:\n{tail(log)}"


def interrupt(job: subprocess.Popen, grace_s: float = 120) -> int:
    """SIGTERM, as `ray job stop` or a preempted node sends; SIGKILL to the whole group if
    the job has not unwound in `grace_s`. Returns the exit code."""
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGTERM)
    try:
        code = job.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        code = job.wait()
    _wait_for_group_to_end(job.pid, grace_s)
    return code


def _wait_for_group_to_end(group: int, grace_s: float) -> None:
    """The job's Ray processes (same process group) wind down after it; wait for them, so the
    next job does not start its cluster beside a dying one, and kill any that linger."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(condition: Callable[[], bool], job: subprocess.Popen, log: Path, what: str,
             timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Poll `condition` while the job runs; fail naming `what` if the job ends or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if job.poll() is not None:
            raise AssertionError(f"the job ended (exit {job.returncode}) before {what}:\n{tail(log)}")
        if time.monotonic() > deadline:
            interrupt(job)
            raise AssertionError(f"waited {timeout_s} s for {what}:\n{tail(log)}")
        time.sleep(0.2)


def logged_steps(run: Path) -> list[int]:
    return [row["step"] for row in read_training_log(run)]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def assert_every_episode_trained_once(run: Path, updates: int, per_update: int) -> dict:
    """Every update trained on exactly its episodes and the ledger balances: each issue of an
    episode ended in its completion or a counted replay, and no duplicate reached the queue."""
    episodes = summary(run)["episodes"]
    rows = read_training_log(run)
    assert [row["step"] for row in rows] == list(range(1, updates + 1))
    assert [row["episodes"] for row in rows] == [per_update] * updates
    assert episodes["duplicates_rejected"] == 0, episodes
    assert episodes["completed"] == updates * per_update + episodes["dropped_stale"], episodes
    assert episodes["issued"] == episodes["completed"] + episodes["reissued"], episodes
    return episodes


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text()[-chars:] if log.exists() else "(no output)"


class BatchMaker:
    """A stand-in rollout worker that owns real trajectory batches: takes episodes from the
    broker, ray.put's one record batch of them and puts its reference into the broker."""

    def __init__(self, name: str) -> None:
        self.name = name

    def play(self, broker, count: int) -> list[str]:
        import ray

        from contracts.trajectory import BatchMeta, EpisodeRecord, TurnRecord, to_record_batch

        specs = ray.get(broker.take_work.remote(self.name, count, 0))
        turn = TurnRecord(prompt_ids=[1, 2, 3], response_ids=[4, 5], response_logprobs=[-0.5, -0.7],
                          policy_version=0, truncated=False, reward=-1.0, done=True, success=False,
                          outcome="wrong", feedback="", parsed_answer="", recognition_ok=None,
                          restart=False)
        episodes = [EpisodeRecord(episode_id=s["episode_id"], task="gp", variant="id",
                                  seed=s["seed"], turns=[turn]) for s in specs]
        batch = to_record_batch(episodes, self.name)
        assert ray.get(broker.put.remote(BatchMeta.of(batch), [ray.put(batch)]))
        return [s["episode_id"] for s in specs]


def process_gone(pid: int, within_s: float = 60.0) -> bool:
    """Whether process `pid` ends (or is left a zombie) within `within_s`."""
    import psutil

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.5)
    return False


def process_title(process) -> str:
    """A process's title as Ray sets it ('ray::RankActor'); '' for one that is gone."""
    import psutil

    try:
        return " ".join(process.cmdline()).strip()
    except psutil.Error:
        return ""
