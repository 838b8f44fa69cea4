"""Revisor's telemetry modules: the metrics endpoint, the recording helpers, the catalogues and
the Prometheus service-discovery files. Values are read back from the process's real registry
and endpoint; each test uses label values of its own, since the registry is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from pydantic import ValidationError

from cluster.job import telemetry as driver
from contracts.telemetry import (
    MetricsConfig,
    advertised_address,
    mark_actor_started,
    start_metrics_endpoint,
)
from learner import telemetry as learner
from learner.stats import SFTStepStats, UpdateStats
from rollout_workers import telemetry as rollout

ROOT = Path(__file__).resolve().parent.parent
MODULES = (rollout, learner, driver)
for _module in MODULES:  # this process reads every role's metrics back
    _module.CATALOGUE.serve()


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


# --- the endpoint ---------------------------------------------------------------------------

def test_endpoint_binds_loopback_once_per_process_and_serves_metrics():
    address = start_metrics_endpoint()
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert start_metrics_endpoint() == address
    rollout.record_episode("gp", "endpoint-test", "w-http", [5.0], success=True, generated_tokens=3)
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    assert ('revisor_rollout_episodes_total{phase="train",task="gp",variant="endpoint-test",'
            'worker="w-http"} 1.0') in text
    assert "_created" not in text


def test_fixed_port_is_honoured_in_a_fresh_process():
    from prometheus_server import free_port

    port = free_port()
    code = ("from contracts.telemetry import start_metrics_endpoint as s; "
            f"print(s(port={port}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == f"127.0.0.1:{port}"


def test_a_process_serves_only_the_metrics_of_its_role():
    """The driver imports the learner's modules: it must not export the learner's unlabelled
    gauges (as zeros beside the learner's real values)."""
    code = ("import prometheus_client as p, cluster.job.telemetry, learner.telemetry; "
            "from contracts.telemetry import mark_actor_started as m; "
            "m('driver', 'd'); print('revisor_ppo_entropy' in p.generate_latest().decode(), "
            "'revisor_queue_depth' in p.generate_latest().decode()); "
            "m('learner', 'l'); print('revisor_ppo_entropy' in p.generate_latest().decode())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.stdout.split() == ["False", "True", "True"]


def test_a_role_declared_before_its_module_is_imported_is_served():
    """A learner rank declares its role when it joins, before it imports the trainer."""
    code = ("import prometheus_client as p; "
            "from contracts.telemetry import mark_actor_started as m; m('learner', 'l'); "
            "import learner.telemetry, cluster.job.telemetry; text = p.generate_latest().decode(); "
            "print('revisor_ppo_entropy' in text, 'revisor_queue_depth' in text)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.stdout.split() == ["True", "False"]


def test_disabled_metrics_start_nothing():
    assert start_metrics_endpoint(MetricsConfig(enabled=False)) is None
    assert start_metrics_endpoint(enabled=False) is None


def test_bad_metrics_settings_name_the_field():
    with pytest.raises(ValidationError, match="port"):
        MetricsConfig(port=70000)
    with pytest.raises(ValidationError, match="prot"):
        start_metrics_endpoint(prot=9100)


def test_wildcard_bind_is_advertised_at_a_reachable_address():
    assert advertised_address("127.0.0.1", 9100) == "127.0.0.1:9100"
    assert advertised_address("::1", 9100) == "[::1]:9100"
    host = advertised_address("0.0.0.0", 9100).rsplit(":", 1)[0]
    assert host not in ("0.0.0.0", "")


# --- recording helpers ------------------------------------------------------------------------

def test_record_episode_counts_rewards_and_success_per_turn():
    labels = {"task": "gp", "variant": "unit-id", "worker": "w-a", "phase": "train"}
    rollout.record_episode("gp", "unit-id", "w-a", [-3.0, -1.0, 5.0], success=True,
                           generated_tokens=30, prompt_tokens=200, policy_lag=2,
                           outcomes=["illegal", "wrong_value", "success"])
    rollout.record_episode("gp", "unit-id", "w-a", [-1.0, -1.0, -1.0], success=False,
                           generated_tokens=20, prompt_tokens=150, policy_lag=0)
    assert sample("revisor_rollout_episodes_total", **labels) == 2
    assert sample("revisor_rollout_episode_successes_total", **labels) == 1
    assert sample("revisor_rollout_turn_reward_sum", **labels, turn="2") == 4.0
    assert sample("revisor_rollout_turn_reward_count", **labels, turn="2") == 2
    assert sample("revisor_rollout_turn_successes_total", **labels, turn="2") == 1
    assert sample("revisor_rollout_turn_successes_total", **labels, turn="0") == 0
    assert sample("revisor_rollout_turn_outcomes_total", **labels, outcome="illegal") == 1
    assert sample("revisor_rollout_generated_tokens_total", **labels) == 50
    assert sample("revisor_rollout_prompt_tokens_total", **labels) == 350
    assert sample("revisor_rollout_episode_turns_sum", **labels) == 6
    assert sample("revisor_rollout_policy_lag_sum", worker="w-a") == 2
    assert sample("revisor_rollout_policy_lag_count", worker="w-a") == 2


def test_an_unsolved_variant_shows_a_success_count_of_zero():
    """A zero, not a missing series: otherwise a success-rate panel shows nothing at all."""
    rollout.record_episode("gp", "never-solved", "w-b", [-1.0], success=False, generated_tokens=1)
    labels = {"task": "gp", "variant": "never-solved", "worker": "w-b", "phase": "train"}
    assert sample("revisor_rollout_episode_successes_total", **labels) == 0
    assert sample("revisor_rollout_turn_successes_total", **labels, turn="0") == 0


def test_evaluation_episodes_have_series_of_their_own_and_no_policy_lag():
    """Evaluation plays fixed seeds greedily: counted with training rollouts it would move the
    training reward and success curves at every evaluation point."""
    train = {"task": "gp", "variant": "unit-phase", "worker": "w-e", "phase": "train"}
    rollout.record_episode("gp", "unit-phase", "w-e", [-1.0, 5.0], success=True,
                           generated_tokens=10, policy_lag=1)
    for _ in range(3):
        rollout.record_episode("gp", "unit-phase", "w-e", [-3.0], success=False,
                               generated_tokens=4, policy_lag=0, phase="eval")
    evaluation = {**train, "phase": "eval"}
    assert sample("revisor_rollout_episodes_total", **train) == 1
    assert sample("revisor_rollout_episode_successes_total", **train) == 1
    assert sample("revisor_rollout_turn_reward_sum", **train, turn="0") == -1.0
    assert sample("revisor_rollout_generated_tokens_total", **train) == 10
    assert sample("revisor_rollout_episodes_total", **evaluation) == 3
    assert sample("revisor_rollout_episode_successes_total", **evaluation) == 0
    assert sample("revisor_rollout_turn_reward_sum", **evaluation, turn="0") == -9.0
    assert sample("revisor_rollout_policy_lag_count", worker="w-e") == 1
    with pytest.raises(ValueError, match="phase"):
        rollout.record_episode("gp", "unit-phase", "w-e", [1.0], success=True,
                               generated_tokens=1, phase="test")


def test_an_episode_without_turns_is_refused():
    with pytest.raises(ValueError, match="at least one turn"):
        rollout.record_episode("gp", "id", "w-c", [], success=False, generated_tokens=0)


def test_engine_weight_sync_and_env_helpers():
    rollout.set_policy_version("w-d", 3)
    assert sample("revisor_rollout_policy_version", worker="w-d") == 3
    rollout.record_weight_sync("w-d", version=4, seconds=0.25, nbytes=1 << 20)
    rollout.record_generate("w-d", seconds=0.1, sequences=16)
    rollout.set_episodes_in_flight("w-d", 16)
    rollout.record_env_step("virl", "unit-env", seconds=0.003)
    mark_actor_started("rollout", "w-d")
    assert sample("revisor_rollout_policy_version", worker="w-d") == 4
    assert sample("revisor_weight_sync_bytes_total", worker="w-d") == 1 << 20
    assert sample("revisor_weight_sync_seconds_count", worker="w-d") == 1
    assert sample("revisor_rollout_generate_sequences_total", worker="w-d") == 16
    assert sample("revisor_rollout_episodes_in_flight", worker="w-d") == 16
    assert sample("revisor_env_step_seconds_count", task="virl", variant="unit-env") == 1
    assert sample("revisor_actor_start_time_seconds", role="rollout", worker="w-d") > 1e9
    with pytest.raises(ValueError, match="role"):
        mark_actor_started("trainer", "w-d")


def update_stats() -> UpdateStats:
    """The PPO trainer's update stats, with fields the dashboards do not show."""
    return UpdateStats(
        policy_version=7, loss=0.5, policy_loss=-0.05, value_loss=1.1, entropy=0.9,
        approx_kl=0.02, clip_fraction=0.2, lr=1e-6, optimizer_steps=16, episodes=64, turns=150,
        tokens=12000, mean_reward=0.3, success_rate=0.25, mean_staleness=0.25, max_staleness=1,
        behaviour_logprob_gap=0.01, behaviour_logprob_gap_max=0.1, seconds=4.0,
        epoch_losses=[0.5])


def test_record_ppo_update_takes_the_trainer_stats():
    tokens_before = sample("revisor_learner_tokens_total", stage="ppo") or 0
    learner.record_ppo_update(update_stats())
    assert sample("revisor_learner_policy_version") == 7
    assert sample("revisor_ppo_clip_fraction") == 0.2
    assert sample("revisor_ppo_value_loss") == 1.1
    assert sample("revisor_ppo_approx_kl") == 0.02
    assert sample("revisor_ppo_staleness_max") == 1
    assert sample("revisor_learner_tokens_total", stage="ppo") == tokens_before + 12000
    assert sample("revisor_learner_learning_rate", stage="ppo") == 1e-6
    learner.record_ppo_update({**update_stats().model_dump(), "policy_version": 8, "grad_norm": 3.0})
    assert sample("revisor_learner_policy_version") == 8
    assert sample("revisor_learner_grad_norm", stage="ppo") == 3.0


def test_record_ppo_update_names_a_missing_field():
    stats = update_stats().model_dump()
    del stats["clip_fraction"]
    with pytest.raises(ValidationError, match="clip_fraction"):
        learner.record_ppo_update(stats)


def test_sft_step_and_weight_publication():
    learner.record_sft_step(SFTStepStats(step=3, loss=2.5, lr=1e-5, grad_norm=None, tokens=4096,
                                         answer_tokens=1024, seconds=0.5))
    learner.record_weight_publish(version=9, seconds=0.05, nbytes=4 << 20)
    assert sample("revisor_sft_loss") == 2.5
    assert sample("revisor_learner_step_seconds_count", stage="sft") >= 1
    assert sample("revisor_learner_policy_version") == 9
    assert sample("revisor_weight_publish_bytes_total") >= 4 << 20


def test_ledger_totals_become_counter_increases():
    totals = {"issued": 10, "completed": 8, "reissued": 2, "duplicates_rejected": 0,
              "dropped_stale": 1}
    before = sample("revisor_episodes_reissued_total")
    driver.record_ledger(totals, run="runs/ledger-a")
    driver.record_ledger(totals, run="runs/ledger-a")
    assert sample("revisor_episodes_reissued_total") == before + 2  # the same totals twice add 2
    driver.record_ledger({**totals, "reissued": 5}, run="runs/ledger-a")
    assert sample("revisor_episodes_reissued_total") == before + 5
    driver.record_ledger({**totals, "reissued": 1}, run="runs/ledger-b")  # another run: from zero
    assert sample("revisor_episodes_reissued_total") == before + 6


def test_queue_fleet_and_evaluation():
    driver.record_queue(depth=5, capacity=64)
    driver.record_workers("rollout", desired=4, alive=3)
    driver.record_worker_restart("rollout", "w-dead")
    driver.record_evaluation("gp", "unit-eval", "ood-rule", success=0.4, episodes=100)
    assert sample("revisor_queue_depth") == 5
    assert sample("revisor_queue_capacity") == 64
    assert sample("revisor_workers_alive", role="rollout") == 3
    assert sample("revisor_worker_restarts_total", role="rollout", worker="w-dead") == 1
    assert sample("revisor_eval_success", task="gp", variant="unit-eval", split="ood-rule") == 0.4
    with pytest.raises(ValueError, match="role"):
        driver.record_workers("gpu", desired=1, alive=1)


# --- catalogues ------------------------------------------------------------------------------

def test_catalogues_are_prefixed_unique_and_registered():
    specs = [spec for module in MODULES for spec in module.catalogue()]
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    assert all(name.startswith("revisor_") for name in names)
    assert all(spec.name.endswith("_total") for spec in specs if spec.kind == "counter")
    registered = {family.name: family.type for family in REGISTRY.collect()}
    for spec in specs:
        family = spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name
        assert registered.get(family) == spec.kind, spec.name


def test_series_names_follow_the_exposition_format():
    by_name = {spec.name: spec for module in MODULES for spec in module.catalogue()}
    assert by_name["revisor_rollout_episodes_total"].series() == ("revisor_rollout_episodes_total",)
    assert by_name["revisor_rollout_turn_reward"].series() == (
        "revisor_rollout_turn_reward_sum", "revisor_rollout_turn_reward_count")
    assert "revisor_weight_sync_seconds_bucket" in by_name["revisor_weight_sync_seconds"].series()
    assert by_name["revisor_rollout_turn_reward"].labels == (
        "task", "variant", "worker", "phase", "turn")


# --- Prometheus service discovery --------------------------------------------------------------

def test_targets_file_groups_endpoints_by_role(tmp_path):
    path = driver.default_targets_file(tmp_path)
    driver.write_prometheus_targets(path, {
        "rollout": ["127.0.0.1:4002", "127.0.0.1:4001", "127.0.0.1:4001"],
        "learner": ["10.0.0.7:4100"], "env": [], "driver": ["[::1]:9100"]}, labels={"run": "r1"})
    groups = json.loads(path.read_text())
    assert groups == [
        {"targets": ["[::1]:9100"], "labels": {"run": "r1", "job": "driver"}},
        {"targets": ["10.0.0.7:4100"], "labels": {"run": "r1", "job": "learner"}},
        {"targets": ["127.0.0.1:4001", "127.0.0.1:4002"], "labels": {"run": "r1", "job": "rollout"}},
    ]
    driver.write_prometheus_targets(path, {"driver": ["127.0.0.1:9100"]})
    assert [g["labels"]["job"] for g in json.loads(path.read_text())] == ["driver"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["targets.json"]


def test_targets_file_refuses_unknown_roles_and_addresses(tmp_path):
    path = tmp_path / "targets.json"
    with pytest.raises(ValueError, match="role 'gpu'"):
        driver.write_prometheus_targets(path, {"gpu": ["127.0.0.1:1"]})
    with pytest.raises(ValueError, match="not host:port"):
        driver.write_prometheus_targets(path, {"rollout": ["http://127.0.0.1:1/metrics"]})
    assert not path.exists()


def test_scrape_config_is_rendered_for_a_run_directory(tmp_path):
    shipped = driver.SCRAPE_CONFIG.read_text()
    rendered = driver.render_prometheus_config(tmp_path)
    assert rendered == shipped.replace("REVISOR_RUN_DIR", str(tmp_path.resolve()))
    fast = yaml.safe_load(driver.render_prometheus_config(tmp_path, scrape_interval="1s"))
    assert fast["global"]["scrape_interval"] == "1s"
    files = fast["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert files == [str(driver.default_targets_file(tmp_path.resolve()))]
    written = driver.write_prometheus_config(tmp_path)
    assert written == tmp_path / "prometheus" / "prometheus.yml"
    assert written.read_text() == rendered
