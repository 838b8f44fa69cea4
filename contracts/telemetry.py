"""Metrics every Revisor process exports: the catalogue machinery, the process's endpoint,
and the catalogue every process serves.

Each Ray actor is its own process, so each one serves its own Prometheus endpoint with
`prometheus_client` and the driver lists the endpoints in a file Prometheus discovers
(`cluster.job.telemetry.write_prometheus_targets`). This keeps metrics independent of Ray's
dashboard agent (absent in tests and laptops started with `include_dashboard=False`) and makes
every series carry exactly the labels Revisor gives it: task, variant, worker, phase (episodes
played for training or for evaluation, never mixed) and, for per-attempt quality, turn (the
0-based verification step, as in the trajectory schema).

Metrics are declared once, in a `Catalogue`, so the list of exported names that the dashboard
test checks against is the list the code registers, never a copy of it. A process serves the
catalogue of its role only (`mark_actor_started`): the driver imports the learner's modules,
and without this it would export the learner's unlabelled gauges as zeros beside the real ones.
Each role's metrics are declared beside its code (rollout_workers/, learner/, cluster/
telemetry.py); this module is what they all share.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram, Summary
from pydantic import BaseModel, ConfigDict, Field

MetricKind = Literal["counter", "gauge", "histogram", "summary"]

SERIES_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}
"""The sample names Prometheus stores for each kind of metric family."""

ROLES = ("driver", "rollout", "learner", "env")
"""Kinds of Revisor process; each is a Prometheus job of its own."""


class MetricsConfig(BaseModel):
    """Where a process serves its metrics. The default is loopback on a free port: safe on a
    shared machine, and the only choice that works with several actors on one node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    """Interface to bind. On a multi-node cluster use "0.0.0.0" so that Prometheus on the head
    node can scrape workers; the address advertised is then the node's IP."""
    port: int = Field(0, ge=0, le=65535)
    """0 picks a free port per process; a fixed port suits a single process (the driver)."""


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric family: what the dashboards may query."""

    name: str
    """Family name as declared (a counter's ends in `_total`)."""
    kind: MetricKind
    labels: tuple[str, ...]
    help: str

    def series(self) -> tuple[str, ...]:
        """The names of the samples Prometheus stores for this family."""
        base = self.name.removesuffix("_total") if self.kind == "counter" else self.name
        return tuple(base + suffix for suffix in SERIES_SUFFIXES[self.kind])


@dataclass(eq=False)
class Catalogue:
    """Declares the metrics of one role; they are exported once the catalogue is served.

    The metrics live outside the process-wide registry until `serve()` adds the catalogue to
    it (as one collector), so importing a module never exports its metrics by itself.
    """

    role: str
    specs: list[MetricSpec] = field(default_factory=list)
    metrics: list[Any] = field(default_factory=list)
    served: bool = False

    def __post_init__(self) -> None:
        _check_role(self.role)
        CATALOGUES.setdefault(self.role, []).append(self)
        if self.role in SERVED_ROLES:  # the process declared its role before this import
            self.serve()

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return self._keep(name, "counter", labels, doc, Counter(name, doc, labels, registry=None))

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return self._keep(name, "gauge", labels, doc, Gauge(name, doc, labels, registry=None))

    def histogram(self, name: str, doc: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS) -> Histogram:
        return self._keep(name, "histogram", labels, doc,
                          Histogram(name, doc, labels, registry=None, buckets=buckets))

    def summary(self, name: str, doc: str, labels: Sequence[str] = ()) -> Summary:
        return self._keep(name, "summary", labels, doc, Summary(name, doc, labels, registry=None))

    def serve(self) -> None:
        """Export this catalogue from this process (idempotent)."""
        if not self.served:
            prometheus_client.REGISTRY.register(self)
            self.served = True

    def describe(self) -> Iterator[Any]:
        for metric in self.metrics:
            yield from metric.describe()

    def collect(self) -> Iterator[Any]:
        for metric in self.metrics:
            yield from metric.collect()

    def _keep(self, name: str, kind: MetricKind, labels: Sequence[str], doc: str,
              metric: Any) -> Any:
        if not name.startswith("revisor_"):
            raise ValueError(f"Revisor metric {name!r} must start with 'revisor_'")
        self.specs.append(MetricSpec(name, kind, tuple(labels), doc))
        self.metrics.append(metric)
        return metric


CATALOGUES: dict[str, list[Catalogue]] = {}
"""Every declared catalogue, by the role whose processes serve it."""
SERVED_ROLES: set[str] = set()
"""The roles this process has declared; catalogues imported later are served at once."""


def serve_role(role: str) -> None:
    """Export the metrics of `role`, now and when its module is imported later, and the
    rollout side's, which every process may record (they all carry labels, so they show only
    once recorded)."""
    _check_role(role)
    SERVED_ROLES.update((role, "rollout"))
    for catalogue in [*CATALOGUES.get(role, []), *CATALOGUES.get("rollout", [])]:
        catalogue.serve()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown Revisor role {role!r}; expected one of {ROLES}")


_endpoint: str | None = None
_endpoint_lock = threading.Lock()


def start_metrics_endpoint(config: MetricsConfig | None = None, **settings: object) -> str | None:
    """Serve this process's metrics over HTTP once; returns the address to scrape ("host:port").

    Idempotent per process: actors may call it from every constructor and restart path and
    always get the same address (the first call's settings decide where it listens).
    `settings` override fields of `config` (e.g. `port=9100`). Returns None when metrics are
    disabled.
    """
    global _endpoint
    config = MetricsConfig.model_validate({**(config or MetricsConfig()).model_dump(), **settings})
    if not config.enabled:
        return None
    with _endpoint_lock:
        if _endpoint is None:
            prometheus_client.disable_created_metrics()
            server, _ = prometheus_client.start_http_server(config.port, addr=config.host)
            _endpoint = advertised_address(config.host, server.server_port)
        return _endpoint


def advertised_address(host: str, port: int) -> str:
    """The address others reach a server on: a wildcard bind is reached at the node's IP."""
    if host in ("", "0.0.0.0", "::"):
        host = _node_ip()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _node_ip() -> str:
    try:
        import ray.util

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray: the name this host resolves to
        return socket.gethostbyname(socket.gethostname())


CATALOGUE = Catalogue("rollout")
"""The catalogue every process serves (serve_role always adds the rollout role): the actor start
time, and the rollout side's metrics (rollout_workers.telemetry), which show once recorded."""

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

ACTOR_START_TIME = CATALOGUE.gauge(
    "revisor_actor_start_time_seconds",
    "Unix time the process started; a change means the actor was restarted.", ("role", "worker"))


def mark_actor_started(role: str, worker: str) -> None:
    """Declare this process's role: serve its metrics, and record its start (Prometheus sees a
    restart as a change of the value)."""
    serve_role(role)
    ACTOR_START_TIME.labels(role, worker).set(time.time())
