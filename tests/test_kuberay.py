"""The KubeRay manifests run the paper configurations as shipped: every pod mounts the runs
and model volumes, the worker groups advertise the custom resources the settings ask for, and
their GPUs are the ones `revisor plan` places (one node of 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cluster.plan.planner import plan_experiment
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import load_settings

ROOT = Path(__file__).resolve().parent.parent
KUBERAY = ROOT / "deploy" / "kuberay"
PAPER = sorted((ROOT / "configs" / "paper").glob("*.yaml"))


def cluster_spec() -> dict:
    """The Ray cluster of the RayJob (the RayCluster is checked equal to it elsewhere)."""
    return yaml.safe_load((KUBERAY / "rayjob.yaml").read_text())["spec"]["rayClusterSpec"]


def groups() -> dict[str, dict]:
    return {g["groupName"]: g for g in cluster_spec()["workerGroupSpecs"]}


def advertised(group: dict) -> dict[str, float]:
    """The custom resources a group's `ray start --resources` gives each pod (KubeRay wants
    the JSON quoted once more)."""
    return json.loads(json.loads(group["rayStartParams"]["resources"]).replace('\\"', '"'))


def limits(group: dict) -> dict:
    (container,) = group["template"]["spec"]["containers"]
    return container["resources"]["limits"]


def pod_specs() -> list[dict]:
    spec = cluster_spec()
    return [spec["headGroupSpec"]["template"]["spec"],
            *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]


def test_every_pod_mounts_the_runs_and_model_volumes():
    for pod in pod_specs():
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in pod["volumes"] if "persistentVolumeClaim" in v}
        assert claims["runs"] == "revisor-runs" and claims["models"] == "revisor-models"
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["runs"] == "/revisor" and mounts["models"] == "/models"


def test_entrypoint_paths_live_on_the_volumes():
    entrypoint = yaml.safe_load((KUBERAY / "rayjob.yaml").read_text())["spec"]["entrypoint"]
    assert "run_dir=/revisor/" in entrypoint and "model=/models/" in entrypoint


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_groups_hold_what_the_paper_configs_request(path):
    config = load_settings(ExperimentConfig, path)
    c, learner = config.cluster, config.learner
    rollout_group, learner_group = groups()["rollout"], groups()["learner"]
    rollout_unit, learner_unit = advertised(rollout_group), advertised(learner_group)
    assert set(c.worker_resources) == set(rollout_unit) == {"rollout"}
    assert set(c.learner_resources) == set(learner_unit) == {"learner"}
    pods = rollout_group["replicas"]
    assert pods * rollout_unit["rollout"] == c.rollout_workers * c.worker_resources["rollout"]
    assert pods * int(limits(rollout_group)["nvidia.com/gpu"]) == c.rollout_workers * c.gpus_per_worker
    assert learner_group["replicas"] == 1
    assert learner_unit["learner"] == learner.num_ranks * c.learner_resources["learner"]
    assert int(limits(learner_group)["nvidia.com/gpu"]) == learner.num_ranks * learner.gpus_per_rank
    assert int(limits(learner_group)["cpu"]) >= learner.num_ranks * learner.cpus_per_rank
    assert int(limits(rollout_group)["cpu"]) >= c.cpus_per_worker


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_manifest_gpus_are_the_planned_node(path):
    plan = plan_experiment(load_settings(ExperimentConfig, path))
    config = load_settings(ExperimentConfig, path)
    total = sum(g["replicas"] * int(limits(g)["nvidia.com/gpu"]) for g in groups().values())
    assert total == len(plan.placement.gpus_used) == config.cluster.num_nodes * config.cluster.gpus_per_node
    learner_gpus = {gpu for p in plan.placement.learner for gpu in p.gpus}
    assert len(learner_gpus) == int(limits(groups()["learner"])["nvidia.com/gpu"])
