"""Placement on a real two-node Ray cluster: the learner ranks land only on the node that
advertises the `learner` resource and the rollout workers only on the `rollout` node, as the
KubeRay manifests' worker groups rely on (cluster.learner_resources, cluster.worker_resources).

Both nodes run on this machine (loopback, a temp dir of the test's own) and share one run
directory; the test stops them by the process groups it started. The job writes nothing
about nodes, so the test asks Ray's state API afterwards (dead actors included)."""

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
from pathlib import Path

import pytest
from ray.util.state.exception import RayStateApiException

from tests.jobs import SMALL_RL, job_env, run_job, small_job
from tests.prometheus_server import free_port

BIN = Path(sys.executable).parent


class TwoNodes:
    """A head node (`learner: 1`) and a second node (`rollout: 2`), 2 CPUs each."""

    def __init__(self, temp_dir: str) -> None:
        self.port, self.dashboard = free_port(), free_port()
        self.temp_dir = temp_dir
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard_url = f"http://127.0.0.1:{self.dashboard}"
        self.nodes: list[subprocess.Popen] = []

    def start(self) -> None:
        self.nodes.append(self._ray_start(
            "--head", f"--port={self.port}", "--resources", json.dumps({"learner": 1}),
            "--include-dashboard=true", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard}"))
        self._wait_for(1)
        self.nodes.append(self._ray_start(f"--address={self.address}",
                                          "--resources", json.dumps({"rollout": 2})))
        self._wait_for(2)

    def _ray_start(self, *args: str) -> subprocess.Popen:
        """`ray start --block` in its own process group, so that stopping it stops its raylet,
        GCS and workers and nothing else on the machine."""
        command = [str(BIN / "ray"), "start", "--block", "--num-cpus=2",
                   "--node-ip-address=127.0.0.1", f"--temp-dir={self.temp_dir}", *args]
        return subprocess.Popen(command, env=job_env(), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _wait_for(self, count: int, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.alive_nodes()) >= count:
                return
            time.sleep(2)
        pytest.fail(f"the two-node cluster never had {count} live node(s)")

    def alive_nodes(self) -> list[dict]:
        try:
            return [n for n in self._state("nodes") if n["state"] == "ALIVE"]
        except RayStateApiException:  # the dashboard is not up yet
            return []

    def _state(self, kind: str) -> list[dict]:
        from ray.util.state import list_actors, list_nodes

        listing = {"nodes": list_nodes, "actors": list_actors}[kind]
        return [item.asdict() for item in listing(address=self.dashboard_url, detail=True,
                                                limit=10_000, raise_on_missing_output=False)]

    def actors(self) -> list[dict]:
        return self._state("actors")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            _stop_group(node)


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass


@pytest.fixture
def two_nodes(monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoNodes]:
    # Ray turns token authentication on for a new cluster when a token file exists in
    # ~/.ray (left by any earlier `ray get-auth-token`); this loopback-only cluster, its job
    # and the state queries here run without one.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    temp_dir = tempfile.mkdtemp(prefix="rv-2n-", dir="/tmp")
    cluster = TwoNodes(temp_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def nodes_by_resource(cluster: TwoNodes) -> dict[str, str]:
    """'learner' / 'rollout' -> the id of the node that advertises it."""
    found = {}
    for node in cluster.alive_nodes():
        for name in ("learner", "rollout"):
            if name in node["resources_total"]:
                found[name] = node["node_id"]
    return found


def nodes_of(actors: list[dict], class_name: str) -> set[str]:
    return {a["node_id"] for a in actors if a["class_name"] == class_name and a.get("node_id")}


@pytest.mark.slow
def test_learner_ranks_and_rollout_workers_land_on_their_own_nodes(two_nodes, tmp_path):
    where = nodes_by_resource(two_nodes)
    assert set(where) == {"learner", "rollout"} and where["learner"] != where["rollout"]
    run = tmp_path / "run"  # one run directory, seen by both nodes (the same disk here)
    args = small_job(run, "two-nodes", f"cluster.address={two_nodes.address}",
                     "cluster.learner_resources.learner=1", "cluster.worker_resources.rollout=1",
                     "cluster.rollout_workers=2", "training.updates=1")
    assert "cluster.address=local" in SMALL_RL  # overridden above: the job joins the cluster
    run_job(args, tmp_path / "job.log")
    actors = two_nodes.actors()
    assert nodes_of(actors, "RankActor") == {where["learner"]}, actors
    assert nodes_of(actors, "RolloutWorker") == {where["rollout"]}, actors
    assert (run / "summary.json").exists()
