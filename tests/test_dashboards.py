"""The shipped deploy artifacts: the Grafana dashboard queries only metrics Revisor exports and
covers what a run must show; provisioning, the scrape config, the KubeRay manifests and the
container recipes hold together. (tests/test_prometheus.py runs the same dashboard queries
against a live Prometheus.)"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import prometheus_client
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cluster.job import telemetry as driver
from contracts.learner_messages import SFTStepStats
from learner import telemetry as learner
from rollout_workers import telemetry as rollout
from telemetry.metrics import mark_actor_started

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "revisor.json"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                "or", "unless", "offset", "inf", "nan"}


def exported_series() -> set[str]:
    return {name for module in (rollout, learner, driver)
            for spec in module.catalogue() for name in spec.series()}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, aggregation
    operators, keywords, label names (inside {} and by/on/... clauses) or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"(?<![\w:])(\d+(ms|[smhdwy]))+(?![\w:])", " ", expr)  # durations (offset)
    expr = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][-+]?\d+)?", " ", expr)  # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", expr):
        followed_by = expr[match.end():].lstrip()[:1]
        if followed_by != "(" and match.group().lower() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> list[str]:
    panels = dashboard()["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def variable_queries() -> list[str]:
    return [v["definition"] for v in dashboard()["templating"]["list"] if v["type"] == "query"]


@pytest.mark.parametrize(("expr", "names"), [
    ('histogram_quantile(0.95, sum by (le, worker) (rate(revisor_a_bucket{worker=~"w|x"}[5m])))',
     {"revisor_a_bucket"}),
    ("sum by (turn) (rate(revisor_b_sum[$__rate_interval])) / sum by (turn) (rate(revisor_b_count[1m]))",
     {"revisor_b_sum", "revisor_b_count"}),
    ("scalar(max(revisor_c)) - on(worker) group_left(task) revisor_d offset 1h30m > bool 1e-3",
     {"revisor_c", "revisor_d"}),
    ("revisor_e_total unless ignoring (le) revisor_f_bucket * 2.5", {"revisor_e_total", "revisor_f_bucket"}),
])
def test_promql_name_extraction(expr, names):
    assert promql_metric_names(expr) == names


def test_dashboard_queries_only_exported_metrics():
    exported = exported_series()
    for expr in dashboard_queries():
        names = promql_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{sorted(names - exported)} in {expr!r} is not exported"


def test_exported_series_are_the_names_the_processes_serve():
    """The catalogue's series names are what prometheus_client really writes on /metrics: record
    one of everything, read the exposition text back, and compare name by name."""
    prometheus_client.disable_created_metrics()  # as every Revisor process does when it serves
    for module in (rollout, learner, driver):
        module.CATALOGUE.serve()
    rollout.record_episode("gp", "dash-check", "w-dash", [-1.0, 5.0], success=True,
                           generated_tokens=4, outcomes=["wrong_value", "success"])
    rollout.record_generate("w-dash", 0.1, 2)
    rollout.set_episodes_in_flight("w-dash", 1)
    rollout.record_weight_sync("w-dash", 1, 0.01, 8)
    rollout.record_env_step("gp", "dash-check", 0.001)
    mark_actor_started("rollout", "w-dash")
    learner.record_sft_step(SFTStepStats(step=1, loss=1.0, lr=1e-3, grad_norm=1.0, tokens=5,
                                         answer_tokens=2, seconds=1))
    learner.record_weight_publish(1, 0.01, 8)
    driver.record_workers("rollout", 1, 1)
    driver.record_worker_restart("rollout", "w-dash")
    driver.record_guard_trip("fingerprint")
    driver.record_evaluation("gp", "dash-check", "id", 0.5, 2)
    driver.record_update_time({"wait": 1.0}, {"learner": 0.5})
    text = prometheus_client.generate_latest().decode()
    served = {sample.name for family in text_string_to_metric_families(text)
              if family.name.startswith("revisor_") for sample in family.samples}
    specs = [spec for module in (rollout, learner, driver) for spec in module.catalogue()]
    assert served == exported_series(), served ^ exported_series()
    assert len(specs) == len({spec.name for spec in specs})


def test_every_query_on_episode_series_picks_training_or_evaluation():
    """Rollout series carry a phase label; a panel summing over both would mix evaluation
    episodes (fixed seeds, greedy) into the training curves."""
    phased = {name for module in (rollout, learner, driver) for spec in module.catalogue()
              if "phase" in spec.labels for name in spec.series()}
    for expr in dashboard_queries():
        for selector in re.finditer(r"([A-Za-z_:][\w:]*)(\{[^}]*\})?", expr):
            if selector.group(1) in phased:
                assert re.search(r'phase="(train|eval)"', selector.group(2) or ""), expr


def test_dashboard_variables_read_exported_metrics():
    for query in variable_queries():
        metric = re.fullmatch(r"label_values\(([\w:]+).*, (\w+)\)", query)
        assert metric, query
        assert metric.group(1) in exported_series()
        assert metric.group(2) in {"task", "variant", "worker"}


def test_dashboard_shows_what_a_run_must_show():
    titles = " | ".join(p["title"].lower() for p in dashboard()["panels"])
    for topic in ["episodes / s", "tokens / s", "reward per turn", "success rate at each turn",
                  "episode success", "policy lag", "queue depth", "weight-sync time",
                  "learner step time", "kl", "clipping", "ppo losses", "entropy", "restarts"]:
        assert topic in titles, f"no panel about {topic!r}"
    queries = " ".join(dashboard_queries())
    for metric in ["revisor_ppo_value_loss", "revisor_ppo_clip_fraction", "revisor_ppo_approx_kl",
                   "revisor_ppo_entropy", "revisor_rollout_policy_lag", "revisor_queue_depth",
                   "revisor_weight_sync_seconds", "revisor_learner_step_seconds",
                   "revisor_worker_restarts_total", "revisor_rollout_generated_tokens_total"]:
        assert metric in queries, metric


def test_every_exported_metric_has_a_panel():
    """A metric nobody can see is either missing from the dashboard or should not exist."""
    queries = " ".join(dashboard_queries())
    shown_elsewhere = {"revisor_eval_episodes"}  # the sample size behind revisor_eval_success
    for spec in (s for module in (rollout, learner, driver) for s in module.catalogue()):
        assert spec.name in shown_elsewhere or any(n in queries for n in spec.series()), spec.name


def test_dashboard_panels_are_well_formed():
    board = dashboard()
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    rollout_queries = [q for q in dashboard_queries() if "revisor_rollout_episodes_total" in q]
    assert all('task=~"$task"' in q and 'worker=~"$worker"' in q for q in rollout_queries)
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "task", "variant",
                                                                 "worker"}


def test_dashboard_json_matches_its_generator():
    spec = importlib.util.spec_from_file_location("make_dashboard", GRAFANA / "make_dashboard.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert DASHBOARD.read_text() == generator.render(), "run python deploy/grafana/make_dashboard.py"


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards():
    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http://127.0.0.1:")
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "revisor.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] in (GRAFANA / "README.md").read_text()


def test_scrape_config_discovers_the_run_targets_file():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job["file_sd_configs"]
    run_dir = Path(driver.RUN_DIR_PLACEHOLDER)
    assert discovery["files"] == [str(driver.default_targets_file(run_dir))]
    assert config["global"]["scrape_interval"] == "5s"


# --- cluster manifests and images ----------------------------------------------------------------

def kuberay(name: str) -> dict:
    (document,) = list(yaml.safe_load_all((DEPLOY / "kuberay" / name).read_text()))
    return document


def test_rayjob_runs_the_cluster_entry_point_on_separate_rollout_and_learner_groups():
    job = kuberay("rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["entrypoint"].startswith("python -m cluster.main --config configs/")
    cluster = job["spec"]["rayClusterSpec"]
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"rollout", "learner"}
    for name, group in groups.items():
        assert f'\\"{name}\\"' in group["rayStartParams"]["resources"]
        json.loads(json.loads(group["rayStartParams"]["resources"]).replace('\\"', '"'))
        (container,) = group["template"]["spec"]["containers"]
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    pyproject = (ROOT / "pyproject.toml").read_text()
    ray_minor = re.search(r'"ray\[default\]==(\d+\.\d+)', pyproject).group(1)
    assert cluster["rayVersion"].startswith(ray_minor)


def test_rayjob_prometheus_sidecar_reads_the_driver_targets():
    job = kuberay("rayjob.yaml")
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    sidecar = next(c for c in head["containers"] if c["name"] == "prometheus")
    script = " ".join(sidecar["args"])
    run_dir = re.search(r"run_dir=(\S+)", job["spec"]["entrypoint"]).group(1)
    assert f's|{driver.RUN_DIR_PLACEHOLDER}|{run_dir}|' in script
    assert "metrics.host=0.0.0.0" in job["spec"]["entrypoint"]
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    assert run_dir.startswith(mounts["runs"])


def test_raycluster_is_the_rayjob_cluster():
    cluster = kuberay("raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert cluster["spec"] == kuberay("rayjob.yaml")["spec"]["rayClusterSpec"]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_container_recipes_copy_existing_files(name):
    text = (DEPLOY / "docker" / name).read_text()
    assert re.search(r"^FROM \S+", text, re.MULTILINE)
    for source in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"{name} copies missing {path}"
    assert (DEPLOY / "docker" / f"{name}.dockerignore").read_text().count(".venv") == 1


def test_images_install_the_right_build():
    assert '".[gpu]"' in (DEPLOY / "docker" / "Dockerfile").read_text()
    assert "deploy/install.sh" in (DEPLOY / "docker" / "Dockerfile.cpu").read_text()


def test_install_test_tools_script_is_valid_bash():
    script = DEPLOY / "install-test-tools.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
