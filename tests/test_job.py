"""The job entry point end to end: settings errors, an embedded run, and `ray job submit`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cluster.main import main as job_main
from cluster.results.evaluations import read_evaluations, read_training_log
from tests.jobs import DEMO, ROOT, SHORT_RUN, small_job
from tests.prometheus_server import free_port


def test_invalid_settings_fail_before_anything_starts_and_name_each_field(tmp_path, capsys):
    code = job_main(["--config", str(DEMO), f"run_dir={tmp_path / 'run'}", "training.updates=-1",
                     "cluster.rollout_workers=0", "learner.ppo.ratio_level=tokens"])
    out = capsys.readouterr().err
    assert code == 2
    for field in ("training.updates", "cluster.rollout_workers", "learner.ppo.ratio_level"):
        assert field in out
    assert "'token' or 'sequence'" in out
    assert not (tmp_path / "run").exists()


def test_sampling_and_learner_temperatures_must_agree(tmp_path, capsys):
    code = job_main(["--config", str(DEMO), f"run_dir={tmp_path}", "learner.ppo.temperature=0.2"])
    assert code == 2
    assert "rollout.sampling.temperature (1.0) disagrees with learner.ppo.temperature (0.2)" in \
        capsys.readouterr().err


def test_a_temperature_for_a_split_that_does_not_exist_is_refused(tmp_path, capsys):
    code = job_main(["--config", str(DEMO), f"run_dir={tmp_path}",
                     "evaluation.split_temperatures={id-sampled: 1.0}"])
    assert code == 2
    assert "split_temperatures names splits that do not exist: id-sampled (splits: id, id-greedy, ood-rule)" \
        in capsys.readouterr().err


@pytest.mark.parametrize(("overrides", "expected"), [
    (["learner.ppo.advantage=group"], "set training.group_size >= 2"),
    (["training.group_size=3"], "episodes_per_update (64) must be a multiple of training.group_size (3)"),
])
def test_group_advantages_need_whole_groups(tmp_path, capsys, overrides, expected):
    assert job_main(["--config", str(DEMO), f"run_dir={tmp_path}", *overrides]) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.slow
def test_embedded_job_trains_on_policy_and_leaves_a_readable_run_directory(tmp_path):
    run = tmp_path / "run"
    assert job_main(["--config", str(DEMO), f"run_dir={run}", f"model={run / 'model'}", *SHORT_RUN]) == 0
    rows = read_training_log(run)
    assert [row["step"] for row in rows] == [1, 2]
    # max_staleness 0: every sample of update k was played by policy k-1, the current one
    assert [row["oldest_version"] for row in rows] == [0, 1]
    # ... and the sampler served exactly the learner's weights (a stale tied output layer in
    # the engine once showed here as gaps of 0.1-0.3 from the second update on)
    assert all(row["behaviour_logprob_gap_max"] < 1e-2 for row in rows), rows
    # ... read once per episode (packed), the learner's log-probs match the engine's on average
    assert all(row["packed_share"] == 1.0 and row["behaviour_logprob_gap"] < 1e-4
               for row in rows), rows
    assert all(row["episodes"] == 16 for row in rows)
    _assert_rows_say_where_time_went(rows)
    points = read_evaluations(run)
    assert {(p.phase, p.split) for p in points} == {
        (phase, split) for phase in ("init", "step-2") for split in ("id", "id-greedy", "ood-rule")}
    assert all(p.episodes == 8 for p in points)
    # the demo evaluates the policy PPO trains (sampled) and, on the same hands, greedily
    assert {p.split: p.temperature for p in points} == {"id": 1.0, "id-greedy": 0.0, "ood-rule": 1.0}
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["rl"]) == {"id", "id-greedy", "ood-rule"} and summary["gflops"]["total"] > 0
    # every evaluation episode lands in one group of what the SFT warm start showed
    by_recall = summary["rl"]["id"]["by_sft_recall"]
    assert sum(group["episodes"] for group in by_recall.values()) == 8
    assert "Recall or skill" in (run / "report" / "report.md").read_text()
    assert (run / "checkpoints" / "version-2").is_dir() and (run / "sft").is_dir()
    assert (run / "config.yaml").exists() and (run / "report" / "report.md").exists()


@pytest.mark.slow
def test_a_job_publishing_through_shared_memory_samples_with_the_learners_weights(tmp_path):
    """learner.weight_sync=shared_memory: the workers (on the learner's node) map rank 0's
    segment, which every publication rewrites; each update's samples still come from exactly
    the policy the learner scores them with."""
    run = tmp_path / "run"
    assert job_main(small_job(run, "shm", "training.updates=2",
                              "learner.weight_sync=shared_memory")) == 0
    rows = read_training_log(run)
    assert [row["step"] for row in rows] == [1, 2]
    assert [row["oldest_version"] for row in rows] == [0, 1]
    assert all(row["behaviour_logprob_gap_max"] < 1e-2 for row in rows), rows
    assert all(row["behaviour_logprob_gap"] < 1e-4 for row in rows), rows


def _assert_rows_say_where_time_went(rows: list[dict]) -> None:
    """Every update's wall time is split into its phases, and the learner's and the rollout
    workers' busy shares are real shares."""
    from cluster.job.update_clock import PHASES

    for row in rows:
        phases = row["phases"]
        assert set(phases) == set(PHASES) and all(v >= 0 for v in phases.values()), row
        assert sum(phases.values()) == pytest.approx(row["seconds"], abs=0.02), row
        assert phases["ppo"] > 0 and phases["publish"] > 0 and phases["checkpoint"] > 0, phases
        assert 0 < row["busy"]["learner"] <= 1 and 0 <= row["busy"]["rollout"] <= 1, row["busy"]
    # the workers may have played update 1's episodes before it began, never update 2's
    assert rows[-1]["phases"]["wait"] > 0 and rows[-1]["busy"]["rollout"] > 0, rows[-1]


@pytest.fixture
def ray_head():
    """A Ray head of this test's own (temp dir, loopback ports), stopped by its process group."""
    bin_dir = Path(sys.executable).parent
    temp_dir = tempfile.mkdtemp(prefix="rv-head-", dir="/tmp")
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [str(bin_dir / "ray"), "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}", "--num-cpus=4",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_jobs_api(bin_dir, address, env)
        yield bin_dir, address, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_jobs_api(bin_dir: Path, address: str, env: dict) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        listing = subprocess.run([str(bin_dir / "ray"), "job", "list", "--address", address],
                                 env=env, capture_output=True, text=True)
        if listing.returncode == 0:
            return
        time.sleep(2)
    pytest.fail(f"the Ray head's job API at {address} never answered: {listing.stderr[-2000:]}")


@pytest.mark.slow
def test_ray_job_submit_runs_a_short_rl_job(ray_head, tmp_path):
    bin_dir, address, env = ray_head
    run = tmp_path / "run"
    submit = subprocess.run(
        [str(bin_dir / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT),
         "--", sys.executable, "-m", "cluster.main", "--config", "configs/cpu_demo.yaml",
         "cluster.address=auto", f"run_dir={run}", f"model={run / 'model'}", *SHORT_RUN],
        env=env, capture_output=True, text=True, timeout=900)
    assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
    job_id = next(line.split("'")[1] for line in submit.stdout.splitlines()
                  if "submitted successfully" in line)
    status = subprocess.run([str(bin_dir / "ray"), "job", "status", "--address", address, job_id],
                            env=env, capture_output=True, text=True)
    assert f"Job '{job_id}' succeeded" in status.stdout, status.stdout + status.stderr
    assert (run / "config.yaml").exists() and (run / "checkpoints" / "version-2").is_dir()
    assert [row["step"] for row in read_training_log(run)] == [1, 2]


@pytest.mark.slow
def test_a_killed_rollout_worker_is_replaced_and_no_episode_is_lost_or_repeated(tmp_path):
    """Kill one rollout worker while the job trains: the job finishes, the worker count is
    restored, and every update still trains on exactly its episodes, each once."""
    import threading

    import ray

    run = tmp_path / "run"
    result: dict = {}
    args = ["--config", str(DEMO), f"run_dir={run}", f"model={run / 'model'}", "name=killtest",
            *SHORT_RUN, "training.updates=4", "training.checkpoint_every=0", "sft.steps=4"]
    job = threading.Thread(target=lambda: result.setdefault("code", job_main(args)))
    job.start()
    killed = _kill_a_worker_once_training_runs(run, "killtest-rollout-0", job)
    job.join(timeout=900)
    assert not job.is_alive() and result["code"] == 0 and killed
    summary = json.loads((run / "summary.json").read_text())
    episodes = summary["episodes"]
    assert summary["worker_restarts"] == 1
    assert episodes["completed"] == 4 * 16 and episodes["duplicates_rejected"] == 0
    assert episodes["issued"] == episodes["completed"] + episodes["reissued"]
    rows = read_training_log(run)
    assert [row["episodes"] for row in rows] == [16] * 4
    assert [row["workers"] for row in rows][-1] == 2
    assert not ray.is_initialized()


def _kill_a_worker_once_training_runs(run: Path, name: str, job) -> bool:
    import ray

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and job.is_alive():
        if read_training_log(run):
            try:
                ray.kill(ray.get_actor(name))
                return True
            except ValueError:
                return False
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    from rollout_workers.tiny_models import save_tiny_model

    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: save_tiny_model(kind, "0.5m", root / kind) for kind in ("lm", "vlm", "mllama")}


def _settings_problem(capsys, run: Path, model: Path, *overrides: str) -> str:
    """Run a job that must be refused before any actor starts; return what it said."""
    code = job_main(["--config", str(DEMO), f"run_dir={run}", f"model={model}", "tiny_model=null",
                     *overrides])
    assert code == 2
    assert not (run / "checkpoints").exists() and not (run / "sft").exists()
    return capsys.readouterr().err


def test_a_vision_task_on_a_text_model_is_refused_naming_the_fields(tmp_path, capsys,
                                                                     tiny_checkpoints):
    err = _settings_problem(capsys, tmp_path / "run", tiny_checkpoints["lm"],
                            "task={task: gp, vision: true}")
    assert "task, sft.task: a vision-language task needs a vision-language model" in err


def test_a_context_longer_than_the_models_is_refused(tmp_path, capsys, tiny_checkpoints):
    err = _settings_problem(capsys, tmp_path / "run", tiny_checkpoints["lm"],
                            "engine.max_model_len=4096")
    assert "engine.max_model_len (4096) exceeds the model's context of 2048 tokens" in err


def test_a_chat_template_without_image_placeholders_is_refused(tmp_path, capsys,
                                                               tiny_checkpoints):
    model = tmp_path / "vlm-without-image-token"
    shutil.copytree(tiny_checkpoints["vlm"], model)
    template = model / "chat_template.jinja"
    template.write_text(template.read_text().replace("'<image>\\n'", "''"))
    err = _settings_problem(capsys, tmp_path / "run", model, "task={task: gp, vision: true}",
                            "evaluation.splits={id: {task: gp, vision: true}}",
                            "evaluation.split_temperatures={}")
    assert ("task: the model's chat template writes 0 image placeholder(s) ('<image>') for an "
            "observation with 1 image(s)") in err
    assert "evaluation.splits.id: the model's chat template writes 0" in err


def test_a_model_path_that_holds_no_model_is_refused(tmp_path, capsys):
    err = _settings_problem(capsys, tmp_path / "run", tmp_path / "nothing-here")
    assert "model: cannot load a model config from" in err


def test_nccl_weight_sync_is_refused_for_a_model_only_the_hf_engine_serves(tmp_path, capsys,
                                                                          tiny_checkpoints):
    err = _settings_problem(capsys, tmp_path / "run", tiny_checkpoints["mllama"],
                            "learner.weight_sync=nccl", "learner.gpus_per_rank=1",
                            "cluster.gpus_per_worker=1")
    assert "learner.weight_sync: 'nccl' needs vLLM rollout engines" in err
    assert "vLLM cannot serve Mllama" in err
