"""The shipped alerting rules (deploy/prometheus/alerts.yml): valid for Prometheus, each one
fires when its unit tests say (alerts_test.yml, through `promtool test rules`), each reads only
metrics Revisor exports, and the run's scrape config loads them.

promtool ships with Prometheus: found and, where allowed (CI runs as root), installed the way
the Prometheus server tests find theirs (tests/prometheus_server.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from prometheus_server import prometheus_binary
from test_dashboards import exported_series, promql_metric_names

from cluster.job.telemetry import ALERT_RULES, write_prometheus_config

RULE_TESTS = ALERT_RULES.with_name("alerts_test.yml")


def promtool(*args: str) -> subprocess.CompletedProcess:
    binary = Path(prometheus_binary()).with_name("promtool")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]
            for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    """An alert without a firing case could be dead (a misspelt metric never fires)."""
    fired = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert {rule["alert"] for rule in rules()} == fired


def test_alerts_read_only_exported_metrics() -> None:
    exported = exported_series()
    for rule in rules():
        names = promql_metric_names(rule["expr"])
        assert names and names <= exported, (rule["alert"], names - exported)


def test_the_runs_scrape_config_loads_the_rules(tmp_path: Path) -> None:
    config = write_prometheus_config(tmp_path)
    assert yaml.safe_load(config.read_text())["rule_files"] == ["alerts.yml"]
    assert config.with_name("alerts.yml").read_text() == ALERT_RULES.read_text()
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout + result.stderr
