"""Revisor's metrics through a real Prometheus, from a real running job.

One module-scoped run: `python -m cluster.main` on the CPU demo, shortened (its own embedded
Ray cluster, temp dir and process group), and a Prometheus server on the shipped scrape
config, started as soon as the driver has written RUN_DIR/prometheus/targets.json. While the
job trains, the tests ask Prometheus's HTTP API for the series a run must show (reward,
throughput, policy lag, queue depth, weight sync, learner steps) with their labels, and run
every dashboard query against the live data. The job then finishes on its own and must succeed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_server import PrometheusServer, prometheus_binary, prometheus_server

from cluster.job.telemetry import default_targets_file, write_prometheus_config
from cluster.results.evaluations import read_training_log

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "cpu_demo.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "revisor.json"
NAME = "prom-test"
UPDATES = 24
JOB = [f"name={NAME}", "tiny_model.size=0.5m", f"training.updates={UPDATES}",
       "training.episodes_per_update=16", "training.checkpoint_every=0", "training.eval_every=0",
       "training.queue_capacity=16", "task.task=gp", "task.rule=id", "task.max_attempts=5",
       "evaluation.episodes=8", "sft=null",
       "rollout.episodes_in_flight=16", "rollout.episodes_per_batch=8", "rollout.env_actors=1",
       "cluster.rollout_workers=2", "cluster.num_cpus=4", "cluster.address=local",
       "metrics.enabled=true", "metrics.host=127.0.0.1"]
"""The demo, short: no SFT warm start (its metrics end with its learner, before the RL phase
lists any target), then enough small updates that the job still trains while the series are
checked (8 were too few on a busy 2-core machine: the job ended before the rate queries).
Everything the tests rely on is pinned here, not read from the demo."""
EVAL_VARIANTS = {"id", "ood"}
"""The demo's evaluation splits (ID and OOD rule) as the variant label shows them."""
GRAFANA_VARIABLES = {"$__rate_interval": "10s", "$__range": "1m", "$task": ".*",
                     "$variant": ".*", "$worker": ".*"}
QUIET_IN_A_HEALTHY_RUN = {
    "sum by (role) (increase(revisor_worker_restarts_total[10m]))":
        "no actor is restarted, so no restart counter exists",
    "sum by (reason) (increase(revisor_weight_sync_divergence_total[10m]))":
        "the sync-divergence guard never trips, so its labelled counter has no series"}
"""Dashboard queries that have no series while nothing goes wrong, and why."""

pytestmark = pytest.mark.slow


@dataclass
class LiveJob:
    run_dir: Path
    process: subprocess.Popen
    log: Path
    prometheus: PrometheusServer

    def running(self) -> bool:
        return self.process.poll() is None

    def query(self, expr: str) -> list[dict]:
        return self.prometheus.query(expr)

    def wait_for(self, what: str, ready, timeout_s: float = 240):
        """Poll while the job runs; a job that ended first fails with its log tail."""
        def still_running_and_ready():
            if not self.running():
                pytest.fail(f"the job ended (exit {self.process.returncode}) before {what}:\n"
                            f"{self.log_tail()}")
            return ready()

        return self.prometheus.wait_for(what, still_running_and_ready, timeout_s=timeout_s)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def live_job() -> Iterator[LiveJob]:
    prometheus_binary()  # installs it, or skips, before the job starts
    run_dir = Path(tempfile.mkdtemp(prefix="rv-prom-", dir="/tmp"))
    log = run_dir.parent / f"{run_dir.name}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "cluster.main", "--config", str(DEMO), f"run_dir={run_dir}",
               f"model={run_dir / 'model'}", *JOB]
    with log.open("w") as out:
        # a session of its own: the job's embedded Ray cluster goes with its process group
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_targets(run_dir, process, log)
        with prometheus_server(run_dir, scrape_interval="1s") as server:
            yield LiveJob(run_dir, process, log, server)
    finally:
        _stop(process)
        shutil.rmtree(run_dir, ignore_errors=True)
        log.unlink(missing_ok=True)


def _wait_for_targets(run_dir: Path, process: subprocess.Popen, log: Path,
                      timeout_s: float = 900) -> None:
    """The driver writes the targets once its learner is up (after SFT)."""
    deadline = time.monotonic() + timeout_s
    while not default_targets_file(run_dir).exists():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            pytest.fail(f"no {default_targets_file(run_dir)} (job exit {process.poll()}):\n{tail}")
        time.sleep(1)


def _stop(process: subprocess.Popen) -> None:
    """End the job if a test left it running: SIGTERM unwinds it (Ray shut down, temp dir
    removed); its process group is killed only if that hangs."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_shipped_scrape_config_passes_promtool(tmp_path):
    binary = Path(prometheus_binary())
    config = write_prometheus_config(tmp_path)
    result = subprocess.run([str(binary.with_name("promtool")), "check", "config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_process_of_the_job(live_job):
    def all_up() -> list[dict]:
        targets = live_job.prometheus.active_targets()
        jobs = sorted(t["labels"]["job"] for t in targets)
        healthy = all(t["health"] == "up" for t in targets)
        return targets if healthy and jobs == ["driver", "env", "env", "learner", "rollout",
                                               "rollout"] else []

    targets = live_job.wait_for("every process scraped", all_up)
    assert {t["labels"]["run"] for t in targets} == {NAME}
    assert all(t["scrapeUrl"].startswith("http://127.0.0.1:") for t in targets)


def test_reward_and_success_arrive_per_task_variant_worker_and_turn(live_job):
    rows = live_job.wait_for("reward per turn", lambda: live_job.query(
        'revisor_rollout_turn_reward_count{phase="train"} > 0'))
    for row in rows:
        labels = row["metric"]
        assert labels["job"] == "rollout" and labels["task"] == "gp-l"
        assert labels["variant"] == "id" and labels["worker"].startswith("rollout-")
        assert int(labels["turn"]) < 5
    mean = live_job.query('sum(revisor_rollout_turn_reward_sum{phase="train"})'
                          ' / sum(revisor_rollout_turn_reward_count{phase="train"})')
    assert -3.0 <= float(mean[0]["value"][1]) <= 5.0  # within the GP reward table
    success = live_job.query('sum(revisor_rollout_episode_successes_total{phase="train"})'
                             ' / sum(revisor_rollout_episodes_total{phase="train"})')
    assert 0.0 <= float(success[0]["value"][1]) <= 1.0


def test_throughput_arrives_for_both_workers(live_job):
    def rates(metric: str):
        rows = live_job.query(f'sum by (worker) (rate({metric}{{phase="train"}}[1m])) > 0')
        return {row["metric"]["worker"] for row in rows} == {"rollout-0", "rollout-1"}

    live_job.wait_for("episodes per second", lambda: rates("revisor_rollout_episodes_total"))
    live_job.wait_for("tokens per second", lambda: rates("revisor_rollout_generated_tokens_total"))
    learner = live_job.wait_for("learner tokens per second", lambda: live_job.query(
        'rate(revisor_learner_tokens_total{stage="ppo"}[1m]) > 0'))
    assert learner[0]["metric"]["job"] == "learner"


def test_policy_lag_counts_every_training_episode_and_nothing_else(live_job):
    """max_staleness 0 (the demo's synchronous PPO): no episode ends more than one version
    behind; evaluation episodes add nothing to the lag histogram."""
    lagged = ('sum(revisor_rollout_policy_lag_count) == '
              'sum(revisor_rollout_episodes_total{phase="train"})')
    live_job.wait_for("policy lag of every training episode", lambda: live_job.query(lagged))
    worst = live_job.query("max(revisor_rollout_policy_lag_sum - revisor_rollout_policy_lag_count)")
    assert float(worst[0]["value"][1]) <= 0.0  # mean lag per worker at most 1 version
    staleness = live_job.wait_for("batch staleness", lambda: live_job.query(
        'revisor_ppo_staleness_max{job="learner"}'))
    assert float(staleness[0]["value"][1]) == 0.0


def test_queue_weight_sync_and_learner_steps_arrive(live_job):
    queue = live_job.wait_for("queue depth", lambda: live_job.query(
        'revisor_queue_capacity{job="driver"} == 16'))
    assert queue and live_job.query('revisor_queue_depth{job="driver"} <= 16')
    synced = live_job.wait_for("weight syncs of both workers", lambda: _workers(live_job.query(
        "revisor_weight_sync_seconds_count > 0")))
    assert synced == {"rollout-0", "rollout-1"}
    assert _workers(live_job.query("revisor_weight_sync_bytes_total > 0")) == synced
    steps = live_job.wait_for("learner steps", lambda: live_job.query(
        'revisor_learner_step_seconds_count{stage="ppo"} > 0'))
    assert steps[0]["metric"]["job"] == "learner"
    versions = live_job.wait_for("policy versions", lambda: live_job.query(
        "revisor_learner_policy_version > 0"))
    assert versions[0]["metric"]["job"] == "learner"
    assert live_job.query("revisor_workers_alive{role='rollout'} == 2")


def test_evaluation_episodes_are_counted_apart_from_training(live_job):
    """The first evaluation (before training) plays both splits; training plays only ID: the
    OOD variant must have evaluation series and no training series."""
    evaluated = live_job.wait_for("evaluation episodes", lambda: _variants(live_job.query(
        'sum by (variant) (revisor_rollout_episodes_total{phase="eval"})')) == EVAL_VARIANTS)
    assert evaluated
    assert _variants(live_job.query('revisor_rollout_episodes_total{phase="train"}')) == {"id"}
    assert not live_job.query('revisor_rollout_policy_lag_count{variant="ood"}')
    scores = live_job.query("revisor_eval_success")
    assert {row["metric"]["split"] for row in scores} == {"id", "id-greedy", "ood-rule"}


def test_each_role_exports_only_its_own_metrics(live_job):
    """Unlabelled gauges exist from import on: a process must import only its role's module."""
    live_job.wait_for("learner statistics", lambda: live_job.query("revisor_ppo_entropy"))

    def jobs(expr: str) -> set[str]:
        return {row["metric"]["job"] for row in live_job.query(expr)}

    assert jobs("revisor_queue_depth") == {"driver"}
    assert jobs("revisor_ppo_entropy") == {"learner"}
    assert jobs("revisor_learner_policy_version") == {"learner"}
    assert jobs("revisor_rollout_episodes_total") == {"rollout"}
    assert jobs("revisor_env_step_seconds_count") == {"env"}


def test_every_dashboard_query_shows_live_data(live_job):
    """Each panel query, with Grafana's variables filled in, is valid PromQL that returns series
    from the running job (a rate needs two scrapes, so the test polls)."""
    queries = _dashboard_queries()
    empty: list[str] = []

    def every_query_shows_data() -> bool:
        empty[:] = [expr for expr in queries
                    if expr not in QUIET_IN_A_HEALTHY_RUN and not live_job.query(expr)]
        return not empty

    try:
        live_job.wait_for("dashboard data", every_query_shows_data, timeout_s=120)
    except AssertionError:
        pytest.fail("dashboard queries without data:\n" + "\n".join(empty))
    assert set(QUIET_IN_A_HEALTHY_RUN) <= set(queries)
    assert live_job.running(), "the dashboard was checked after the job ended"


def test_each_update_says_where_its_time_went(live_job):
    """The parts of the last update and the busy shares of learner and rollout workers."""
    parts = live_job.wait_for("update time by part", lambda: live_job.query(
        'revisor_update_seconds{part="ppo"} > 0'))
    assert parts and {row["metric"]["job"] for row in parts} == {"driver"}
    seen = {row["metric"]["part"] for row in live_job.query("revisor_update_seconds")}
    assert seen == {"wait", "score", "ppo", "export", "publish", "checkpoint", "evaluate", "other"}
    busy = live_job.query('revisor_busy_fraction{role="learner"} > 0')
    assert busy and all(0 < float(row["value"][1]) <= 1 for row in busy)


def _workers(rows: list[dict]) -> set[str]:
    return {row["metric"]["worker"] for row in rows}


def _variants(rows: list[dict]) -> set[str]:
    return {row["metric"]["variant"] for row in rows}


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append(expr)
    return queries


def test_the_job_finishes_and_succeeds(live_job):
    """Last in the module: the job was only watched, never disturbed."""
    try:
        code = live_job.process.wait(timeout=900)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the job is still running after 15 minutes:\n{live_job.log_tail()}")
    assert code == 0, live_job.log_tail()
    assert [row["step"] for row in read_training_log(live_job.run_dir)] == \
        list(range(1, UPDATES + 1))
    summary = json.loads((live_job.run_dir / "summary.json").read_text())
    assert summary["episodes"]["completed"] == UPDATES * 16
    assert summary["policy_version"] == UPDATES
    # the episode accounting reached Prometheus, up to the job's final counts
    for field in ("issued", "completed", "reissued"):
        scraped = live_job.query(f"max_over_time(revisor_episodes_{field}_total[15m])")
        assert float(scraped[0]["value"][1]) == summary["episodes"][field], (field, scraped)


