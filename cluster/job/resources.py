"""Whether the Ray cluster can ever hold what a phase of the job is about to ask of it.

Ray queues an actor or a placement group that no node can hold and waits for it forever,
silently: a GPU config on a machine without GPUs used to print its first line and hang. Before
a phase starts its actors, the job compares what they will ask for (one bundle per learner rank,
per SFT rank, per rollout worker) with the nodes of the cluster. A request that no node of a
fixed cluster can hold fails at once, in one line naming what is missing and the setting that
asks for it (a settings error: exit status 2). On an autoscaling cluster
(`cluster.autoscaling`) nodes may still come, so the job waits, saying every ~30 s what for,
up to `cluster.resource_timeout_s`, and then fails naming it.

The check is on the nodes' total resources, not what is free now: other jobs' actors come and
go, and Ray queues behind them by itself.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import ray
from pydantic import BaseModel, ConfigDict
from rich.console import Console

from cluster.job import telemetry
from cluster.settings.experiment import ClusterConfig, ExperimentConfig
from cluster.settings.loading import SettingsError

console = Console()
PROGRESS_EVERY_S = 30.0
"""How often a job waiting for resources says what it waits for."""
POLL_S = 2.0
_SHOWN = ("CPU", "GPU")
"""Resources a node summary always shows (besides those some request names)."""


class Request(BaseModel):
    """`count` bundles of `bundle` resources that one part of the job asks for."""

    model_config = ConfigDict(frozen=True)

    what: str
    """Who asks, as the message says it: 'learner ranks', 'rollout workers'."""
    count: int
    bundle: dict[str, float]
    fix: dict[str, str]
    """Resource -> the setting that asks for it, named in the hint ('learner.gpus_per_rank')."""


def learner_request(what: str, num_ranks: int, cpus: float, gpus: float,
                    setting: str = "learner", custom: Mapping[str, float] | None = None
                    ) -> Request:
    """The bundles of a RankPool (learner/group.py): one per rank, packed. `custom`: the
    custom resources every rank asks for too (cluster.learner_resources)."""
    custom = dict(custom or {})
    fix = {name: "cluster.learner_resources" for name in custom}
    return Request(what=what, count=num_ranks,
                   bundle=_bundle({"CPU": cpus, "GPU": gpus, **custom}),
                   fix={**fix, "CPU": f"{setting}.cpus_per_rank", "GPU": f"{setting}.gpus_per_rank"})


def worker_request(cluster: ClusterConfig, what: str = "rollout workers") -> Request:
    """The rollout workers' actors (cluster/job/fleet.py, evaluation's workers alike)."""
    bundle = {"CPU": cluster.cpus_per_worker, "GPU": cluster.gpus_per_worker,
              **cluster.worker_resources}
    fix = {name: "cluster.worker_resources" for name in cluster.worker_resources}
    return Request(what=what, count=cluster.rollout_workers, bundle=_bundle(bundle),
                   fix={**fix, "CPU": "cluster.cpus_per_worker", "GPU": "cluster.gpus_per_worker"})


def sft_requests(config: ExperimentConfig) -> list[Request]:
    """The SFT ranks (the SFT arm's evaluations run on workers before and after them, never
    beside them: evaluate_model checks those on its own)."""
    learner = config.learner
    return [learner_request("SFT ranks", learner.num_ranks, learner.cpus_per_rank,
                            learner.gpus_per_rank, custom=config.cluster.learner_resources)]


def rl_requests(config: ExperimentConfig) -> list[Request]:
    """The RL phase: the learner's ranks and the rollout workers, all at once."""
    learner = config.learner
    return [learner_request("learner ranks", learner.num_ranks, learner.cpus_per_rank,
                            learner.gpus_per_rank, custom=config.cluster.learner_resources),
            worker_request(config.cluster)]


def _bundle(resources: Mapping[str, float]) -> dict[str, float]:
    return {name: float(amount) for name, amount in resources.items() if amount > 0}


def shortfall(requests: Sequence[Request], nodes: Sequence[Mapping[str, float]]) -> str | None:
    """None when the nodes (each one's total resources) can hold every request's bundles at
    once, each bundle on one node; else one line saying what is missing and what to change."""
    for request in requests:
        if request.count and not any(_fits(request.bundle, node) for node in nodes):
            return _no_node(request, nodes)
    free = [dict(node) for node in nodes]
    for request in requests:
        for _ in range(request.count):
            node = next((n for n in free if _fits(request.bundle, n)), None)
            if node is None:
                return _not_all(requests, nodes)
            for name, amount in request.bundle.items():
                node[name] -= amount
    return None


def _fits(bundle: Mapping[str, float], node: Mapping[str, float]) -> bool:
    return all(node.get(name, 0.0) + 1e-9 >= amount for name, amount in bundle.items())


def _no_node(request: Request, nodes: Sequence[Mapping[str, float]]) -> str:
    """No node holds even one bundle: name the resource no node has, or has enough of."""
    absent = [name for name in request.bundle if not any(node.get(name) for node in nodes)]
    short = absent or [name for name in request.bundle
                       if not any(_fits({name: request.bundle[name]}, n) for n in nodes)]
    short = short or list(request.bundle)
    need = _format({name: request.bundle[name] for name in short})
    if absent:
        reason = f"no node of this Ray cluster has {_article(absent)}"
    else:
        reason = f"no node of this Ray cluster has {need} to give one of them"
    return (f"{request.what} need {request.count} x {need} but {reason} "
            f"(nodes: {describe_nodes(nodes, request.bundle)}); {_hint(request, short)}")


def _not_all(requests: Sequence[Request], nodes: Sequence[Mapping[str, float]]) -> str:
    """Each bundle fits somewhere, but not all of them together."""
    asked = " + ".join(f"{r.count} x {_format(r.bundle)} ({r.what})" for r in requests if r.count)
    names = {name for r in requests for name in r.bundle}
    settings = sorted({r.fix[name] for r in requests for name in r.bundle if name in r.fix})
    return (f"the job needs {asked} at once but this Ray cluster cannot hold them all "
            f"(nodes: {describe_nodes(nodes, names)}); lower {', '.join(settings)} or the "
            "number of ranks or workers, or run on a larger cluster")


def _article(names: list[str]) -> str:
    return " or ".join(f"an {n}" if n[0] in "AEFHILMNORSX" else f"a {n}" for n in names)


def _hint(request: Request, short: list[str]) -> str:
    settings = [request.fix[name] for name in short if name in request.fix]
    if "GPU" in short and "GPU" in request.fix:
        return f"set {request.fix['GPU']}=0 for CPU, or run on a GPU cluster"
    return f"lower {', '.join(settings) or 'what they ask for'}, or run on a larger cluster"


def _format(resources: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{name}: {_number(amount)}" for name, amount in resources.items()) + "}"


def _number(amount: float) -> str:
    return str(int(amount)) if float(amount).is_integer() else f"{amount:g}"


def describe_nodes(nodes: Sequence[Mapping[str, float]], names: Iterable[str] = ()) -> str:
    """'2 x {CPU: 8}, 1 x {CPU: 16, GPU: 8}': the nodes by their CPUs, GPUs and the custom
    resources asked for."""
    shown = [*_SHOWN, *sorted(set(names) - set(_SHOWN))]
    kinds = Counter(_format({n: node[n] for n in shown if node.get(n)}) for node in nodes)
    return ", ".join(f"{count} x {kind}" for kind, count in kinds.items()) or "none"


def cluster_nodes() -> list[dict[str, float]]:
    """The total resources of each live node of the connected Ray cluster."""
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def ensure_resources(requests: Sequence[Request], config: ExperimentConfig,
                     nodes: Callable[[], list[dict[str, float]]] = cluster_nodes) -> None:
    """Return once the cluster can hold `requests`; a settings error naming what is missing
    when it never can (a fixed cluster) or has not within cluster.resource_timeout_s."""
    missing = shortfall(requests, nodes())
    if missing is None:
        return
    if not config.cluster.autoscaling:
        raise SettingsError(missing)
    _serve_metrics(config)
    _wait(requests, config.cluster, nodes, missing)


def _wait(requests: Sequence[Request], cluster: ClusterConfig,
          nodes: Callable[[], list[dict[str, float]]], missing: str) -> None:
    """Poll the autoscaling cluster's nodes, saying every PROGRESS_EVERY_S what is missing;
    the driver's gauge revisor_resource_wait_seconds says it to Prometheus."""
    start = last_said = time.monotonic()
    console.print(f"waiting up to {cluster.resource_timeout_s:.0f} s for the autoscaler: {missing}")
    try:
        while missing is not None:
            waited = time.monotonic() - start
            telemetry.record_resource_wait(waited)
            if waited >= cluster.resource_timeout_s:
                raise SettingsError(f"gave up after {waited:.0f} s (cluster.resource_timeout_s) "
                                    f"waiting for resources: {missing}")
            if time.monotonic() - last_said >= PROGRESS_EVERY_S:
                console.print(f"still waiting for resources ({waited:.0f} s of "
                              f"{cluster.resource_timeout_s:.0f} s): {missing}")
                last_said = time.monotonic()
            time.sleep(min(POLL_S, max(cluster.resource_timeout_s - waited, 0.01)))
            missing = shortfall(requests, nodes())
    finally:
        telemetry.record_resource_wait(0.0)
    console.print(f"resources arrived after {math.ceil(time.monotonic() - start)} s")


def _serve_metrics(config: ExperimentConfig) -> None:
    """List the driver for Prometheus while it waits (its RL phase lists it again later)."""
    from telemetry.metrics import start_metrics_endpoint

    endpoint = start_metrics_endpoint(config.metrics)
    if endpoint:
        telemetry.write_prometheus_targets(telemetry.default_targets_file(Path(config.run_dir)),
                                           {"driver": [endpoint]})
