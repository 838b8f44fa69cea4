"""A real Prometheus server for tests, watching one Revisor run directory.

The server runs the shipped scrape config (deploy/prometheus/prometheus.yml) with the run
directory filled in, so it scrapes whatever the run lists in RUN_DIR/prometheus/targets.json
(tests/test_prometheus.py: a short real job). It listens on loopback on a free port, keeps its
data in the run directory, and is stopped by its own process id.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cluster.job.telemetry import write_prometheus_config

ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = ROOT / "deploy" / "install-test-tools.sh"
CANNOT_INSTALL = 2
"""Exit status of the install script on a machine where it may not install (no root/apt)."""


def prometheus_binary() -> str:
    """The `prometheus` binary: $REVISOR_PROMETHEUS, else on PATH, else installed now."""
    found = os.environ.get("REVISOR_PROMETHEUS") or shutil.which("prometheus")
    if found:
        return found
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True,
                            timeout=600)
    if result.returncode == CANNOT_INSTALL and not os.environ.get("CI"):
        pytest.skip(f"Prometheus is not installed and cannot be here: {result.stderr.strip()}")
    assert result.returncode == 0, f"{INSTALL_SCRIPT} failed:\n{result.stderr}"
    return shutil.which("prometheus") or pytest.fail("the install script left no prometheus")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrometheusServer:
    """Queries against the server's HTTP API (instant queries and the list of targets)."""

    def __init__(self, url: str, process: subprocess.Popen, log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as reply:
                body = json.load(reply)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        if body["status"] != "success":
            raise AssertionError(f"Prometheus refused {path} {params}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) `expr` evaluates to now."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def active_targets(self) -> list[dict[str, Any]]:
        return self.api("targets", state="active")["activeTargets"]

    def wait_for(self, what: str, ready: Callable[[], Any], timeout_s: float = 60,
                 between: Callable[[], None] = lambda: None) -> Any:
        """Poll `ready()` until it returns something truthy; `between` runs before each poll."""
        deadline = time.monotonic() + timeout_s
        while True:
            between()
            result = ready()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus: no {what} after {timeout_s:.0f} s; "
                                     f"log tail:\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def prometheus_server(run_dir: Path, scrape_interval: str = "1s") -> Iterator[PrometheusServer]:
    """Run Prometheus on the shipped config for `run_dir` until the block ends."""
    binary = prometheus_binary()
    config = write_prometheus_config(run_dir, scrape_interval)
    port = free_port()
    log = config.parent / "prometheus.log"
    command = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
               f"--storage.tsdb.path={config.parent / 'data'}", "--log.level=warn"]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: PrometheusServer, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"Prometheus exited at start:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"Prometheus not ready after {timeout_s} s:\n{server.log_tail()}")
