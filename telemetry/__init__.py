"""The metrics machinery every Revisor process serves: the `Catalogue` a role declares its
metrics in, the process's Prometheus endpoint (`start_metrics_endpoint`), and the role a
process declares when it starts (`mark_actor_started`).

The driver, the learner ranks, the rollout workers and their env actors each run it, so it sits
below cluster/, learner/ and rollout_workers/ rather than inside one of them; each role's own
catalogue stays beside its code (rollout_workers/telemetry.py, learner/telemetry.py,
cluster/job/telemetry.py). contracts/ keeps only the setting that crosses a process boundary
(`contracts.metrics.MetricsConfig`): this package is an implementation (prometheus_client, an
HTTP server, process-wide state), and imports no Revisor package besides contracts."""
