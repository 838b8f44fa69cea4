"""Writes deploy/grafana/dashboards/revisor.json, the Revisor dashboard, from the panel list below.

The panels are kept here as a short list of (title, unit, queries) so a change is one line
to review; the JSON beside it is what Grafana loads (provisioned, or imported by hand) and
tests/test_dashboards.py checks that the two agree and that every query names a metric the
code exports. Run: python deploy/grafana/make_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "revisor.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"
EP = '{task=~"$task", variant=~"$variant", worker=~"$worker", phase="train"}'
"""Rollout series carry task, variant, worker and phase labels; the dashboard's variables filter
the first three, and training panels read only episodes played for training."""
EVAL = '{task=~"$task", variant=~"$variant", worker=~"$worker", phase="eval"}'
"""The same series for evaluation episodes (fixed seeds, played between updates)."""
W = '{worker=~"$worker"}'


def rate(metric: str, labels: str = "", by: str = "") -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(rate({metric}{labels}{RATE}))"


def ratio(numerator: str, denominator: str, labels: str, by: str) -> str:
    return f"{rate(numerator, labels, by)} / {rate(denominator, labels, by)}"


def mean(histogram: str, labels: str = "", by: str = "") -> str:
    """Mean of a histogram or summary over the rate window: rate(_sum) / rate(_count)."""
    return ratio(f"{histogram}_sum", f"{histogram}_count", labels, by)


def quantile(q: float, histogram: str, labels: str = "", by: str = "") -> str:
    group = ", ".join(["le", *filter(None, [by])])
    return f"histogram_quantile({q}, sum by ({group}) (rate({histogram}_bucket{labels}{RATE})))"


# (row title, [(panel title, unit, [(query, legend), ...]), ...])
ROWS = [
    ("Throughput", [
        ("Episodes / s", "short", [
            (rate("revisor_rollout_episodes_total", EP, "task, variant"), "{{task}} {{variant}}")]),
        ("Tokens / s (rollout)", "short", [
            (rate("revisor_rollout_generated_tokens_total", EP, "worker"), "generated {{worker}}"),
            (rate("revisor_rollout_prompt_tokens_total", EP), "prompt (all workers)")]),
        ("Tokens / s (learner)", "short", [
            (rate("revisor_learner_tokens_total", "", "stage"), "trained ({{stage}})"),
            (rate("revisor_learner_episodes_total"), "episodes consumed / s")]),
        ("Engine call latency", "s", [
            (quantile(0.5, "revisor_rollout_generate_seconds", W, "worker"), "p50 {{worker}}"),
            (quantile(0.95, "revisor_rollout_generate_seconds", W, "worker"), "p95 {{worker}}")]),
        ("Sequences per second and episodes in flight", "short", [
            (rate("revisor_rollout_generate_sequences_total", W, "worker"), "sequences/s {{worker}}"),
            (f"revisor_rollout_episodes_in_flight{W}", "in flight {{worker}}")]),
    ]),
    ("Reward and success", [
        ("Mean reward per turn", "short", [
            (mean("revisor_rollout_turn_reward", EP, "task, variant, turn"),
             "{{task}} {{variant}} turn {{turn}}")]),
        ("Episode success rate", "percentunit", [
            (ratio("revisor_rollout_episode_successes_total", "revisor_rollout_episodes_total",
                   EP, "task, variant"), "{{task}} {{variant}}")]),
        ("Success rate at each turn", "percentunit", [
            (ratio("revisor_rollout_turn_successes_total", "revisor_rollout_turn_reward_count",
                   EP, "task, variant, turn"), "{{task}} {{variant}} turn {{turn}}")]),
        ("Turns per episode", "short", [
            (mean("revisor_rollout_episode_turns", EP, "task, variant"), "mean {{task}} {{variant}}")]),
        ("Verifier outcomes / s", "short", [
            (rate("revisor_rollout_turn_outcomes_total", EP, "outcome"), "{{outcome}}")]),
        ("Evaluation success (ID and OOD)", "percentunit", [
            ('max by (task, variant, split) (revisor_eval_success{task=~"$task", variant=~"$variant"})',
             "{{task}} {{variant}} {{split}}")]),
        ("Evaluation episodes / s", "short", [
            (rate("revisor_rollout_episodes_total", EVAL, "task, variant"), "{{task}} {{variant}}"),
            (rate("revisor_rollout_generated_tokens_total", EVAL), "tokens / s (all variants)")]),
    ]),
    ("Policy lag and queue", [
        ("Policy lag at episode end (versions)", "short", [
            (mean("revisor_rollout_policy_lag", W, "worker"), "mean {{worker}}"),
            (quantile(0.95, "revisor_rollout_policy_lag", W), "p95 (all workers)")]),
        ("Staleness of trained batches (versions)", "short", [
            ("revisor_ppo_staleness_mean", "mean"), ("revisor_ppo_staleness_max", "max")]),
        ("Policy versions", "short", [
            ("max(revisor_learner_policy_version)", "learner"),
            (f"revisor_rollout_policy_version{W}", "{{worker}}")]),
        ("Trajectory queue depth", "short", [
            ("revisor_queue_depth", "depth"), ("revisor_queue_capacity", "capacity")]),
        ("Episode accounting / s", "short", [
            (rate("revisor_episodes_issued_total"), "issued"),
            (rate("revisor_episodes_completed_total"), "completed"),
            (rate("revisor_episodes_reissued_total"), "re-issued"),
            (rate("revisor_episodes_dropped_stale_total"), "dropped stale"),
            (rate("revisor_episodes_duplicate_total"), "duplicates (ledger)"),
            (rate("revisor_queue_duplicates_total"), "duplicates (queue)")]),
    ]),
    ("Weight sync", [
        ("Weight-sync time per worker", "s", [
            (quantile(0.5, "revisor_weight_sync_seconds", W, "worker"), "p50 {{worker}}"),
            (quantile(0.95, "revisor_weight_sync_seconds", W, "worker"), "p95 {{worker}}")]),
        ("Weight-sync bytes / s", "Bps", [
            (rate("revisor_weight_sync_bytes_total", W, "worker"), "loaded {{worker}}"),
            (rate("revisor_weight_publish_bytes_total"), "published (learner)")]),
        ("Weight publication time (learner)", "s", [
            (mean("revisor_weight_publish_seconds"), "mean"),
            (quantile(0.95, "revisor_weight_publish_seconds"), "p95")]),
    ]),
    ("Learner", [
        ("Learner step time", "s", [
            (mean("revisor_learner_step_seconds", "", "stage"), "mean {{stage}}"),
            (quantile(0.95, "revisor_learner_step_seconds", "", "stage"), "p95 {{stage}}")]),
        ("PPO losses", "short", [
            ("revisor_ppo_loss", "total"), ("revisor_ppo_policy_loss", "policy"),
            ("revisor_ppo_value_loss", "value")]),
        ("PPO KL and clipping", "short", [
            ("revisor_ppo_approx_kl", "approx KL (update)"), ("revisor_ppo_kl_ref", "KL to reference"),
            ("revisor_ppo_clip_fraction", "clip fraction"),
            ("revisor_ppo_value_clip_fraction", "value clip fraction")]),
        ("Policy entropy", "short", [("revisor_ppo_entropy", "entropy")]),
        ("Gradient norm", "short", [("revisor_learner_grad_norm", "{{stage}}")]),
        ("Learning rate", "short", [("revisor_learner_learning_rate", "{{stage}}")]),
        ("Stale-sample correction", "short", [
            ("revisor_ppo_stale_weight", "mean weight"), ("revisor_ppo_stale_dropped", "dropped share")]),
        ("Episode packing", "short", [
            ("revisor_ppo_tokens_read_per_answer_token", "tokens read per answer token"),
            ("revisor_ppo_packed_share", "packed share"),
            ("sum by (reason) (increase(revisor_ppo_pack_fallback_episodes_total[10m]))",
             "per-turn {{reason}} (10 min)")]),
        ("SFT loss", "short", [("revisor_sft_loss", "loss per answer token")]),
        ("Behaviour log-prob gap (nats per token)", "short", [
            ("revisor_ppo_behaviour_logprob_gap", "mean"),
            ("revisor_ppo_behaviour_logprob_gap_max", "max")]),
        ("Sync-divergence guard trips (10 min)", "short", [
            ("sum by (reason) (increase(revisor_weight_sync_divergence_total[10m]))",
             "{{reason}}")]),
    ]),
    ("Where an update's time goes", [
        ("Update time by part", "s", [("revisor_update_seconds", "{{part}}")]),
        ("Busy share of wall time", "percentunit", [("revisor_busy_fraction", "{{role}}")]),
        ("Since the last update, and waiting for resources", "s", [
            ("time() - revisor_last_update_timestamp_seconds", "since the last update"),
            ("revisor_resource_wait_seconds", "waiting for resources")]),
        ("Updates finished (10 min)", "short", [
            ("sum (increase(revisor_updates_total[10m]))", "updates")]),
    ]),
    ("Workers", [
        ("Actors desired and alive", "short", [
            ("revisor_workers_desired", "desired {{role}}"), ("revisor_workers_alive", "alive {{role}}")]),
        ("Worker restarts (10 min)", "short", [
            ("sum by (role) (increase(revisor_worker_restarts_total[10m]))", "restarted {{role}}"),
            ("sum by (role) (changes(revisor_actor_start_time_seconds[10m]))", "new process {{role}}")]),
        ("Verification time (env actors)", "s", [
            (quantile(0.95, "revisor_env_step_seconds", '{task=~"$task", variant=~"$variant"}',
                      "task, variant"), "p95 {{task}} {{variant}}")]),
    ]),
]


def variable(name: str, query: str) -> dict:
    return {"name": name, "label": name, "type": "query", "datasource": DATASOURCE,
            "definition": query, "query": {"query": query, "refId": name},
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "sort": 1}


def panel(ident: int, title: str, unit: str, queries: list, x: int, y: int) -> dict:
    targets = [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
                "legendFormat": legend, "range": True} for i, (expr, legend) in enumerate(queries)]
    return {"id": ident, "type": "timeseries", "title": title, "datasource": DATASOURCE,
            "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": targets}


def dashboard() -> dict:
    panels, y, ident = [], 0, 1
    for row_title, row_panels in ROWS:
        panels.append({"id": ident, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        ident, y = ident + 1, y + 1
        for i, (title, unit, queries) in enumerate(row_panels):
            panels.append(panel(ident, title, unit, queries, x=12 * (i % 2), y=y + 8 * (i // 2)))
            ident += 1
        y += 8 * ((len(row_panels) + 1) // 2)
    templating = [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0},
        variable("task", "label_values(revisor_rollout_episodes_total, task)"),
        variable("variant", 'label_values(revisor_rollout_episodes_total{task=~"$task"}, variant)'),
        variable("worker", "label_values(revisor_rollout_episodes_total, worker)"),
    ]
    return {"uid": "revisor", "title": "Revisor", "description":
            "Revisor actor-learner run: throughput, reward and success per variant and turn, "
            "policy lag, queue, weight sync, learner and PPO statistics, worker restarts.",
            "tags": ["revisor"], "editable": True, "schemaVersion": 39, "version": 1,
            "refresh": "10s", "time": {"from": "now-1h", "to": "now"}, "timezone": "browser",
            "graphTooltip": 1, "templating": {"list": templating},
            "annotations": {"list": []}, "links": [], "panels": panels}


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
