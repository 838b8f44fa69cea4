"""The driver's metrics (queue, episode ledger, worker fleet, evaluation) and how Prometheus
finds every Revisor process.

Actors serve metrics on ports chosen at start, on whichever node Ray placed them, so no static
scrape list can name them. The driver collects each actor's address and writes a Prometheus
file-based service discovery file, RUN_DIR/prometheus/targets.json by default, rewriting it
whenever actors come and go; Prometheus notices the change by itself. Next to it the driver can
write the shipped scrape config with the run directory filled in (`write_prometheus_config`),
so that `prometheus --config.file=RUN_DIR/prometheus/prometheus.yml` watches the run, with the
alerting rules of deploy/prometheus/alerts.yml copied next to it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from telemetry.metrics import ROLES, Catalogue, MetricSpec

SCRAPE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "prometheus.yml"
ALERT_RULES = SCRAPE_CONFIG.with_name("alerts.yml")
"""The alerting rules the scrape config loads (rule_files: alerts.yml, next to it)."""
RUN_DIR_PLACEHOLDER = "REVISOR_RUN_DIR"
"""The one token of the shipped scrape config that names a place: the run directory."""
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")

CATALOGUE = Catalogue("driver")
QUEUE_DEPTH = CATALOGUE.gauge(
    "revisor_queue_depth", "Finished episodes waiting in the trajectory queue.")
QUEUE_CAPACITY = CATALOGUE.gauge(
    "revisor_queue_capacity", "Episodes the trajectory queue holds before workers wait.")
QUEUE_DUPLICATES = CATALOGUE.counter(
    "revisor_queue_duplicates_total", "Episodes put twice into the queue (rejected).")
LEDGER_ISSUED = CATALOGUE.counter(
    "revisor_episodes_issued_total", "Episodes handed to rollout workers, re-runs included.")
LEDGER_COMPLETED = CATALOGUE.counter(
    "revisor_episodes_completed_total", "Episodes counted as played, each exactly once.")
LEDGER_REISSUED = CATALOGUE.counter(
    "revisor_episodes_reissued_total", "Episodes re-run because their worker died or left.")
LEDGER_DUPLICATES = CATALOGUE.counter(
    "revisor_episodes_duplicate_total", "Late duplicate completions rejected by the ledger.")
LEDGER_DROPPED_STALE = CATALOGUE.counter(
    "revisor_episodes_dropped_stale_total", "Played episodes the learner refused as too stale.")
WORKERS_DESIRED = CATALOGUE.gauge(
    "revisor_workers_desired", "Actors the driver wants, per role.", ("role",))
WORKERS_ALIVE = CATALOGUE.gauge(
    "revisor_workers_alive", "Actors alive and serving, per role.", ("role",))
WORKER_RESTARTS = CATALOGUE.counter(
    "revisor_worker_restarts_total", "Actors restarted after a failure.", ("role", "worker"))
EVAL_SUCCESS = CATALOGUE.gauge(
    "revisor_eval_success", "Success rate of the last evaluation (split: id or an OOD kind).",
    ("task", "variant", "split"))
EVAL_EPISODES = CATALOGUE.gauge(
    "revisor_eval_episodes", "Episodes behind the last evaluation's success rate.",
    ("task", "variant", "split"))
UPDATE_SECONDS = CATALOGUE.gauge(
    "revisor_update_seconds", "Seconds the last update spent in each part (wait for episodes, "
    "score, PPO epochs, export and publish weights, checkpoint, evaluate, other).", ("part",))
"""Labelled `part`, not `phase`: on episode series `phase` tells training from evaluation."""
BUSY_FRACTION = CATALOGUE.gauge(
    "revisor_busy_fraction", "Share of the last update's wall time the learner trained and the "
    "rollout workers generated (mean over workers).", ("role",))
UPDATES = CATALOGUE.counter(
    "revisor_updates_total", "PPO updates the job has finished (a stall shows as no increase).")
LAST_UPDATE = CATALOGUE.gauge(
    "revisor_last_update_timestamp_seconds", "Unix time the last update finished; with "
    "revisor_update_seconds it tells a stalled job from a slow one.")
SYNC_DIVERGENCE = CATALOGUE.counter(
    "revisor_weight_sync_divergence_total", "Updates the sync-divergence guard refused (reason "
    "gap: engine and learner log-probs apart; fingerprint: a worker's weights differ from rank "
    "0's) and NCCL publications that ran out of time (reason timeout).", ("reason",))
RESOURCE_WAIT = CATALOGUE.gauge(
    "revisor_resource_wait_seconds", "Seconds the job has been waiting for the cluster to hold "
    "its actors (an autoscaler adding nodes); 0 when not waiting.")

_LEDGER_COUNTERS = {"issued": LEDGER_ISSUED, "completed": LEDGER_COMPLETED,
                    "reissued": LEDGER_REISSUED, "duplicates_rejected": LEDGER_DUPLICATES,
                    "dropped_stale": LEDGER_DROPPED_STALE}
_last_counts: dict[tuple[str, str], float] = {}
"""The totals last reported, by (run, counter): each run's broker counts from zero."""


def catalogue() -> list[MetricSpec]:
    """Every metric the driver exports."""
    return list(CATALOGUE.specs)


def record_queue(depth: int, capacity: int, duplicates: int = 0, run: str = "") -> None:
    """The queue's `stats()`: depth and capacity now, duplicates since it started."""
    QUEUE_DEPTH.set(depth)
    QUEUE_CAPACITY.set(capacity)
    _advance(run, "queue.duplicates", QUEUE_DUPLICATES, duplicates)


def record_ledger(counts: Any, run: str = "") -> None:
    """One run's ledger counts (its `counts` model or a mapping of the same fields).

    The ledger keeps totals; Prometheus counters only go up, so each call adds what changed
    since the run's last call. A resumed ledger starts with its checkpoint's totals, which a
    fresh driver process reports once as its first increase; another run in the same process
    (a study's next arm) counts from zero.
    """
    values = counts if isinstance(counts, Mapping) else counts.model_dump()
    for field, counter in _LEDGER_COUNTERS.items():
        _advance(run, f"ledger.{field}", counter, values.get(field, 0))


def record_update_time(phases: Mapping[str, float], busy: Mapping[str, float]) -> None:
    """Where the last update's seconds went, and how busy each role was during it."""
    UPDATES.inc()
    LAST_UPDATE.set_to_current_time()
    for phase, seconds in phases.items():
        UPDATE_SECONDS.labels(phase).set(seconds)
    for role, share in busy.items():
        _check_role(role)
        BUSY_FRACTION.labels(role).set(share)


def record_resource_wait(seconds: float) -> None:
    """How long the job has waited for resources so far (0: not waiting)."""
    RESOURCE_WAIT.set(seconds)


def record_workers(role: str, desired: int, alive: int) -> None:
    _check_role(role)
    WORKERS_DESIRED.labels(role).set(desired)
    WORKERS_ALIVE.labels(role).set(alive)


def record_worker_restart(role: str, worker: str) -> None:
    _check_role(role)
    WORKER_RESTARTS.labels(role, worker).inc()


def record_guard_trip(reason: str) -> None:
    """One trip of the sync-divergence guard (cluster.job.sync_guard) or one weight
    publication that timed out."""
    SYNC_DIVERGENCE.labels(reason).inc()


def record_evaluation(task: str, variant: str, split: str, success: float, episodes: int) -> None:
    EVAL_SUCCESS.labels(task, variant, split).set(success)
    EVAL_EPISODES.labels(task, variant, split).set(episodes)


def _advance(run: str, name: str, counter: Any, total: float) -> None:
    last = _last_counts.get((run, name), 0)
    if total > last:
        counter.inc(total - last)
    _last_counts[(run, name)] = max(total, last)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown Revisor role {role!r}; expected one of {ROLES}")


# --- Prometheus service discovery -----------------------------------------------------------

def default_targets_file(run_dir: Path) -> Path:
    return Path(run_dir) / "prometheus" / "targets.json"


def write_prometheus_targets(path: Path, endpoints: Mapping[str, Sequence[str]],
                             labels: Mapping[str, str] | None = None) -> None:
    """Write a file_sd targets file: one group per role ("rollout": ["10.0.0.5:41234", ...]).

    The file is replaced atomically, so Prometheus never reads half of it. `labels` are added
    to every target (e.g. {"run": "gp-ppo-1"} to tell runs apart in one Prometheus).
    """
    groups = []
    for role, addresses in sorted(endpoints.items()):
        _check_role(role)
        for address in addresses:
            if not _ADDRESS.match(address):
                raise ValueError(f"metrics endpoint {address!r} of role {role!r} is not host:port")
        if addresses:
            groups.append({"targets": sorted(set(addresses)),
                           "labels": {**(labels or {}), "job": role}})
    _replace(Path(path), json.dumps(groups, indent=1) + "\n")


def render_prometheus_config(run_dir: Path, scrape_interval: str | None = None,
                             template: Path = SCRAPE_CONFIG) -> str:
    """The shipped scrape config with the run directory filled in (and, for tests, a shorter
    scrape interval); everything else stays as shipped."""
    text = template.read_text().replace(RUN_DIR_PLACEHOLDER, str(Path(run_dir).resolve()))
    if scrape_interval is None:
        return text
    config = yaml.safe_load(text)
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = scrape_interval
    return yaml.safe_dump(config, sort_keys=False)


def write_prometheus_config(run_dir: Path, scrape_interval: str | None = None) -> Path:
    """Write RUN_DIR/prometheus/prometheus.yml, ready for `prometheus --config.file=...`, and
    the alerting rules it loads next to it (a run directory that moves keeps its rules)."""
    path = Path(run_dir) / "prometheus" / "prometheus.yml"
    _replace(path, render_prometheus_config(run_dir, scrape_interval))
    _replace(path.with_name(ALERT_RULES.name), ALERT_RULES.read_text())
    return path


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
