"""Revisor's metrics through a real Prometheus: Ray actors serve them, the driver lists the
actors in the targets file, Prometheus (the shipped scrape config) finds and scrapes them, and
the dashboard's queries return data.

One module-scoped run: a local Ray cluster with two rollout workers, a learner, an env actor
and one for the driver's metrics (each its own process with its own endpoint; the test
process only writes the targets file, as the driver does), and a Prometheus server, all on
loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from prometheus_server import PrometheusServer, prometheus_binary, prometheus_server
from telemetry_actors import DriverActor, EnvActor, LearnerActor, RolloutActor

from cluster.telemetry import (
    default_targets_file,
    write_prometheus_config,
    write_prometheus_targets,
)

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "revisor.json"
RUNTIME_ENV = {"env_vars": {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
                             "OMP_NUM_THREADS": "1"}}
"""Actors import Revisor and tests/telemetry_actors.py (their classes)."""
GRAFANA_VARIABLES = {"$__rate_interval": "10s", "$__range": "1m", "$task": ".*",
                     "$variant": ".*", "$worker": ".*"}

pytestmark = pytest.mark.slow


class LiveRun:
    """The actors, the targets file the driver keeps, and the Prometheus watching it."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        options = {"num_cpus": 0.25, "runtime_env": RUNTIME_ENV}
        self.actors = {
            "rollout-0": ray.remote(RolloutActor).options(**options).remote("rollout-0"),
            "rollout-1": ray.remote(RolloutActor).options(**options).remote("rollout-1"),
            "learner-0": ray.remote(LearnerActor).options(**options).remote(),
            "env-0": ray.remote(EnvActor).options(**options).remote(),
            "driver-0": ray.remote(DriverActor).options(**options).remote(),
        }
        self.prometheus: PrometheusServer | None = None

    def endpoints(self) -> dict[str, list[str]]:
        """What the driver lists: every live actor's address under its role."""
        names = list(self.actors)
        addresses = ray.get([self.actors[name].endpoint.remote() for name in names])
        listing: dict[str, list[str]] = {}
        for name, address in zip(names, addresses, strict=True):
            listing.setdefault(name.split("-")[0], []).append(address)
        return listing

    def publish_targets(self) -> None:
        write_prometheus_targets(default_targets_file(self.run_dir), self.endpoints(),
                                 labels={"run": "prometheus-test"})

    def play(self) -> None:
        """One round of work everywhere, so counters keep rising while the test polls."""
        ray.get([actor.play.remote(2) for actor in self.actors.values()])

    def record_restart(self, role: str, worker: str) -> None:
        ray.get(self.actors["driver-0"].record_restart.remote(role, worker))

    def series(self, expr: str) -> dict[str, float]:
        """{worker or variant label: value} of an instant query."""
        return {(row["metric"].get("worker") or row["metric"].get("variant", "")): float(row["value"][1])
                for row in self.prometheus.query(expr)}


@pytest.fixture(scope="module")
def live_run() -> Iterator[LiveRun]:
    prometheus_binary()  # installs it, or skips, before any Ray process starts
    temp_dir = tempfile.mkdtemp(prefix="rv-", dir="/tmp")
    run_dir = Path(tempfile.mkdtemp(prefix="rv-run-", dir="/tmp"))
    os.environ["OMP_NUM_THREADS"] = "1"
    ray.init(_temp_dir=temp_dir, num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        run = LiveRun(run_dir)
        run.publish_targets()
        run.play()
        run.record_restart("env", "env-0")  # gives the restart panel a series from the start
        with prometheus_server(run_dir, scrape_interval="1s") as server:
            run.prometheus = server
            server.wait_for("scraped targets", lambda: _all_up(server, expected=5),
                            between=run.play)
            yield run
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)


def _all_up(server: PrometheusServer, expected: int) -> bool:
    targets = server.active_targets()
    return len(targets) == expected and all(t["health"] == "up" for t in targets)


def test_shipped_scrape_config_passes_promtool(tmp_path):
    binary = Path(prometheus_binary())
    config = write_prometheus_config(tmp_path)
    result = subprocess.run([str(binary.with_name("promtool")), "check", "config", str(config)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_discovers_every_role_from_the_targets_file(live_run):
    targets = live_run.prometheus.active_targets()
    jobs = sorted(t["labels"]["job"] for t in targets)
    assert jobs == ["driver", "env", "learner", "rollout", "rollout"]
    assert {t["labels"]["run"] for t in targets} == {"prometheus-test"}
    assert all(t["scrapeUrl"].startswith("http://127.0.0.1:") for t in targets)


def test_each_role_exports_only_its_own_metrics(live_run):
    """Unlabelled gauges exist from import on: a process must import only its role's module."""
    def jobs(expr: str) -> set[str]:
        return {row["metric"]["job"] for row in live_run.prometheus.query(expr)}

    assert jobs("revisor_queue_depth") == {"driver"}
    assert jobs("revisor_ppo_entropy") == {"learner"}
    assert jobs("revisor_rollout_episodes_total") == {"rollout"}
    assert jobs("revisor_env_step_seconds_count") == {"env"}


def test_reward_per_variant_and_turn_arrives(live_run):
    mean_reward = ("sum by (variant, turn) (revisor_rollout_turn_reward_sum)"
                   " / sum by (variant, turn) (revisor_rollout_turn_reward_count)")
    rows = live_run.prometheus.wait_for(
        "reward series", lambda: live_run.prometheus.query(mean_reward), between=live_run.play)
    by_turn = {(r["metric"]["variant"], r["metric"]["turn"]): float(r["value"][1]) for r in rows}
    assert by_turn == {("id-text", "0"): -1.0, ("id-text", "1"): 5.0, ("ood-rule", "0"): -3.0}
    success = live_run.series('sum by (variant) (revisor_rollout_episode_successes_total)'
                              ' / sum by (variant) (revisor_rollout_episodes_total)')
    assert success == {"id-text": 1.0, "ood-rule": 0.0}


def test_generated_token_rate_arrives_for_every_worker(live_run):
    expr = 'sum by (worker) (rate(revisor_rollout_generated_tokens_total{job="rollout"}[10s]))'
    rates = live_run.prometheus.wait_for(
        "token rates", lambda: _positive(live_run.series(expr), count=2), between=live_run.play)
    assert set(rates) == {"rollout-0", "rollout-1"}
    assert live_run.series('sum by (worker) (revisor_rollout_episodes_total)')["rollout-1"] >= 2


def test_policy_lag_arrives(live_run):
    expr = ("sum by (worker) (revisor_rollout_policy_lag_sum)"
            " / sum by (worker) (revisor_rollout_policy_lag_count)")
    lag = live_run.prometheus.wait_for(
        "policy lag", lambda: live_run.series(expr), between=live_run.play)
    assert lag == {"rollout-0": 2.0, "rollout-1": 0.0}
    assert live_run.series("revisor_ppo_staleness_max") == {"": 2.0}
    assert live_run.series("revisor_ppo_clip_fraction") == {"": 0.125}


def test_every_dashboard_query_runs_and_shows_data(live_run):
    """Each panel query, with Grafana's variables filled in, is valid PromQL that returns series
    (a rate needs two scrapes of a series, so the test waits for the slowest target)."""
    queries = _dashboard_queries()
    empty: list[str] = []

    def every_query_shows_data() -> bool:
        empty[:] = [expr for expr in queries if not live_run.prometheus.query(expr)]
        return not empty

    try:
        live_run.prometheus.wait_for("dashboard data", every_query_shows_data, timeout_s=30,
                                     between=live_run.play)
    except AssertionError:
        pytest.fail("dashboard queries without data:\n" + "\n".join(empty))


def test_a_replaced_worker_leaves_and_joins_the_scrape(live_run):
    """A worker goes, the driver starts another and rewrites the targets: Prometheus follows."""
    gone = live_run.actors.pop("rollout-1")
    gone_address = ray.get(gone.endpoint.remote())
    ray.kill(gone)
    live_run.record_restart("rollout", "rollout-1")
    options = {"num_cpus": 0.25, "runtime_env": RUNTIME_ENV}
    live_run.actors["rollout-1"] = ray.remote(RolloutActor).options(**options).remote("rollout-1")
    live_run.publish_targets()
    new_address = ray.get(live_run.actors["rollout-1"].endpoint.remote())

    def followed() -> bool:
        urls = {t["labels"]["instance"]: t["health"] for t in live_run.prometheus.active_targets()}
        return gone_address not in urls and urls.get(new_address) == "up"

    live_run.prometheus.wait_for("the replacement worker", followed, between=live_run.play)
    restarts = live_run.prometheus.wait_for(
        "the restart count", lambda: live_run.series('revisor_worker_restarts_total{role="rollout"}'))
    assert restarts["rollout-1"] == 1.0


def _positive(values: dict[str, float], count: int) -> dict[str, float]:
    return values if len(values) == count and all(v > 0 for v in values.values()) else {}


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
