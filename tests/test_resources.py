"""A job that asks the Ray cluster for what it can never hold says so at once (exit status 2)
instead of waiting forever; on an autoscaling cluster it waits, saying what for, up to a limit.

The pure check runs on made-up nodes; one test runs the paper's GP-L config (8 GPUs) for real
on this GPU-less machine and expects the one line within a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.job import resources
from cluster.job.resources import Request, ensure_resources, learner_request, shortfall
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
CPU_NODE = {"CPU": 2.0, "memory": 1e9, "node:127.0.0.1": 1.0}
GPU_NODE = {"CPU": 32.0, "GPU": 8.0, "memory": 1e11}
PAPER_NODE = {**GPU_NODE, "learner": 4.0, "rollout": 4.0}
"""One 8-GPU node advertising the custom resources the paper configs ask for
(cluster.learner_resources, cluster.worker_resources), as deploy/kuberay's groups do."""


def workers(count: int, cpus: float, gpus: float = 0.0, **custom: float) -> Request:
    fix = {"CPU": "cluster.cpus_per_worker", "GPU": "cluster.gpus_per_worker"}
    return Request(what="rollout workers", count=count,
                   bundle={k: v for k, v in {"CPU": cpus, "GPU": gpus, **custom}.items() if v},
                   fix={**fix, **{k: "cluster.worker_resources" for k in custom}})


def test_gpus_on_a_cluster_without_any() -> None:
    line = shortfall([learner_request("learner ranks", 8, 0, 1)], [CPU_NODE])
    assert line == ("learner ranks need 8 x {GPU: 1} but no node of this Ray cluster has a GPU "
                    "(nodes: 1 x {CPU: 2}); set learner.gpus_per_rank=0 for CPU, or run on a "
                    "GPU cluster")


def test_a_bundle_larger_than_any_node() -> None:
    line = shortfall([learner_request("learner ranks", 2, 4, 0)], [CPU_NODE, CPU_NODE])
    assert line == ("learner ranks need 2 x {CPU: 4} but no node of this Ray cluster has "
                    "{CPU: 4} to give one of them (nodes: 2 x {CPU: 2}); lower "
                    "learner.cpus_per_rank, or run on a larger cluster")


def test_a_custom_resource_no_node_has() -> None:
    line = shortfall([workers(2, 1, pool=1)], [GPU_NODE])
    assert "no node of this Ray cluster has a pool" in line
    assert "(nodes: 1 x {CPU: 32, GPU: 8})" in line and "cluster.worker_resources" in line


def test_every_bundle_fits_but_not_all_at_once() -> None:
    requests = [learner_request("learner ranks", 4, 4, 1), workers(5, 4, 1)]
    line = shortfall(requests, [GPU_NODE])
    assert line.startswith("the job needs 4 x {CPU: 4, GPU: 1} (learner ranks) + 5 x "
                           "{CPU: 4, GPU: 1} (rollout workers) at once but this Ray cluster "
                           "cannot hold them all (nodes: 1 x {CPU: 32, GPU: 8})")


def test_learner_ranks_ask_for_their_custom_resources() -> None:
    """cluster.learner_resources is in every rank's bundle, as RankPool asks for it: a cluster
    whose nodes do not advertise it cannot hold the ranks, and the line names the setting."""
    ranks = learner_request("learner ranks", 4, 4, 1, custom={"learner": 1})
    assert ranks.bundle == {"CPU": 4.0, "GPU": 1.0, "learner": 1.0}
    line = shortfall([ranks], [GPU_NODE])
    assert "no node of this Ray cluster has a learner" in line
    assert "cluster.learner_resources" in line
    assert shortfall([ranks, workers(4, 4, 1, rollout=1)], [PAPER_NODE]) is None


def test_what_fits_passes() -> None:
    requests = [learner_request("learner ranks", 4, 4, 1), workers(4, 3, 1)]
    assert shortfall(requests, [GPU_NODE]) is None
    assert shortfall([learner_request("SFT ranks", 1, 1, 0), workers(2, 0)], [CPU_NODE]) is None
    assert shortfall([learner_request("learner ranks", 2, 1, 1)],
                     [{"CPU": 1, "GPU": 1}, {"CPU": 1, "GPU": 1}]) is None


def config(**cluster: object) -> ExperimentConfig:
    return load_settings(ExperimentConfig, ROOT / "configs" / "paper" / "gp-l.yaml",
                         [f"cluster.{key}={value}" for key, value in cluster.items()])


def test_a_fixed_cluster_fails_at_once() -> None:
    with pytest.raises(SettingsError, match="learner ranks need 4 x {GPU: 1, learner: 1}"):
        ensure_resources(resources.rl_requests(config()), config(), nodes=lambda: [CPU_NODE])


def test_an_autoscaling_cluster_waits_then_names_what_never_came(monkeypatch, capsys) -> None:
    monkeypatch.setattr(resources, "PROGRESS_EVERY_S", 0.2)
    monkeypatch.setattr(resources, "POLL_S", 0.05)
    waits: list[float] = []
    monkeypatch.setattr(resources.telemetry, "record_resource_wait", waits.append)
    settings = config(autoscaling="true", resource_timeout_s=0.5)
    settings = settings.model_copy(update={"metrics": settings.metrics.model_copy(
        update={"enabled": False})})
    with pytest.raises(SettingsError, match=r"gave up after \d+ s \(cluster.resource_timeout_s\) "
                                            "waiting for resources: learner ranks need"):
        ensure_resources(resources.rl_requests(settings), settings, nodes=lambda: [CPU_NODE])
    said = capsys.readouterr().out
    assert "waiting up to 0 s for the autoscaler" in said or "waiting up to 1 s" in said
    assert "still waiting for resources" in said
    assert max(waits) >= 0.5 and waits[-1] == 0.0  # the gauge RevisorWaitingForResources reads


def test_an_autoscaling_cluster_goes_on_when_nodes_arrive(monkeypatch) -> None:
    monkeypatch.setattr(resources, "POLL_S", 0.05)
    settings = config(autoscaling="true", resource_timeout_s=30)
    settings = settings.model_copy(update={"metrics": settings.metrics.model_copy(
        update={"enabled": False})})
    arrivals = iter([[CPU_NODE], [CPU_NODE, GPU_NODE], [CPU_NODE, PAPER_NODE]])
    ensure_resources(resources.rl_requests(settings), settings, nodes=lambda: next(arrivals))


@pytest.mark.slow
def test_the_paper_config_on_a_machine_without_gpus_exits_2_with_the_line(tmp_path) -> None:
    """The real command: Ray starts embedded on this CPU-only machine, and the check refuses the
    4 GPU ranks before any actor starts. The paper config's model directory holds config.json
    only, which the job refuses before Ray starts; placeholder weight and tokenizer files get
    it past that check to this one (nothing loads them before the ranks would)."""
    model = tmp_path / "model"
    shutil.copytree(ROOT / "configs" / "models" / "llama-3.2-11b-vision-instruct", model)
    for placeholder in ("model.safetensors", "tokenizer.json"):
        (model / placeholder).touch()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "cluster.main", "--config", "configs/paper/gp-l.yaml",
         f"run_dir={tmp_path / 'run'}", f"model={model}", "cluster.num_cpus=2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 2, result.stdout + result.stderr
    assert time.monotonic() - start < 60
    assert ("SFT ranks need 4 x {GPU: 1, learner: 1} but no node of this Ray cluster has a GPU "
            "or a learner (nodes: 1 x {CPU: 2}); set learner.gpus_per_rank=0 for CPU, or run on "
            "a GPU cluster"
            in result.stderr), result.stderr
