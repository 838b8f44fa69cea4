"""A job killed while it saves a checkpoint, or resumed with the wrong inputs: the resume
starts from the last complete checkpoint and says so, and a resume that cannot work fails in
one line (never a traceback from inside an actor)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import dump_settings, load_settings
from learner import checkpoint
from learner.checkpoint_manifest import (
    LATEST,
    MANIFEST,
    CheckpointError,
    choose_checkpoint,
    model_mismatch,
    read_latest,
)
from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, OptimConfig
from learner.model import meta_backbone, parameter_shapes
from learner.rank import LearnerRank
from rollout_workers.tiny_models import save_tiny_model
from tests.jobs import DEMO, ROOT, job_env
from tests.process_group import own_process_group  # noqa: F401 (ends the learners' group)

torch.set_num_threads(1)
MODEL_STATES = "mp_rank_00_model_states.pt"


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model("lm", "0.5m", tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="module")
def bigger_lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model("lm", "5m", tmp_path_factory.mktemp("lm5m"))


def _learner(path: Path) -> LearnerRank:
    return LearnerRank(LearnerConfig(
        model=ModelConfig(path=str(path)), optim=OptimConfig(lr=1e-3), total_updates=4,
        engine=DeepSpeedConfig(zero_stage=2, micro_batch_size=4)))


@pytest.fixture(scope="module")
def rank(lm_path: Path) -> LearnerRank:
    return _learner(lm_path)


def _save(rank: LearnerRank, directory: Path, version: int) -> Path:
    """A checkpoint under `version` (the counters are all a version changes here)."""
    rank.state = rank.state.model_copy(update={"policy_version": version, "updates": version})
    return Path(rank.save(directory))


@pytest.fixture(scope="module")
def two_versions(rank: LearnerRank, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint directory holding version-1 and version-2, both complete."""
    directory = tmp_path_factory.mktemp("saved") / "ckpt"
    _save(rank, directory, 1)
    _save(rank, directory, 2)
    return directory


@pytest.fixture
def checkpoints(two_versions: Path, tmp_path: Path) -> Path:
    """A copy of `two_versions` for one test to damage."""
    return Path(shutil.copytree(two_versions, tmp_path / "ckpt"))


def test_a_complete_save_is_latest_and_lists_its_files(checkpoints: Path) -> None:
    assert read_latest(checkpoints) == "version-2"
    choice = choose_checkpoint(checkpoints)
    assert (choice.tag, choice.version, choice.torn, choice.note) == ("version-2", 2, None, None)
    manifest = (checkpoints / "version-2" / MANIFEST).read_text()
    assert MODEL_STATES in manifest and "rng-rank0.pt" in manifest
    assert not list(checkpoints.rglob("*.tmp"))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


TEARS = {
    # `latest` moved to version-2, then one of its files was cut short (a full disk, say)
    "truncated file": lambda d: _truncate(d / "version-2" / MODEL_STATES),
    "missing file": lambda d: (d / "version-2" / "rng-rank0.pt").unlink(),
    # a manifest cut short by hand or by a disk (it is written aside and renamed, so never
    # by a kill)
    "unreadable manifest": lambda d: _truncate(d / "version-2" / MANIFEST),
}


@pytest.mark.parametrize("tear", TEARS)
def test_a_torn_latest_checkpoint_resumes_from_the_previous_complete_one(
        checkpoints: Path, rank: LearnerRank, tear: str) -> None:
    TEARS[tear](checkpoints)
    choice = choose_checkpoint(checkpoints)
    assert (choice.tag, choice.version, choice.torn) == ("version-1", 1, "version-2")
    assert str(checkpoints / "version-2") in choice.note and "version-1" in choice.note
    assert "\n" not in choice.note
    if tear == "truncated file":
        assert MODEL_STATES in choice.note and "bytes" in choice.note
    state = rank.load(checkpoints)  # in-process too, the torn checkpoint is skipped
    assert state.policy_version == 1 and state.updates == 1


def test_a_newer_save_cut_off_before_its_commit_is_not_resumed(checkpoints: Path) -> None:
    """Killed after writing version-3's files, before its manifest and `latest`: the run
    resumes from version-2, which `latest` still names (nothing torn to report)."""
    shutil.copytree(checkpoints / "version-2", checkpoints / "version-3")
    (checkpoints / "version-3" / MANIFEST).unlink()
    choice = choose_checkpoint(checkpoints)
    assert (choice.tag, choice.torn, choice.note) == ("version-2", None, None)


def test_without_a_complete_checkpoint_the_error_names_the_directory(checkpoints: Path) -> None:
    _truncate(checkpoints / "version-2" / MODEL_STATES)
    (checkpoints / "version-1" / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="no complete learner checkpoint in") as error:
        choose_checkpoint(checkpoints)
    assert str(checkpoints) in str(error.value) and "version-2" in str(error.value)
    with pytest.raises(CheckpointError, match="no learner checkpoint in"):
        choose_checkpoint(checkpoints.parent / "nothing-here")


def test_a_checkpoint_from_before_manifests_that_latest_names_is_complete(
        checkpoints: Path) -> None:
    """Compatibility: DeepSpeed wrote `latest` last, so the tag it names was complete."""
    for version in (1, 2):
        (checkpoints / f"version-{version}" / MANIFEST).unlink()
    assert choose_checkpoint(checkpoints).tag == "version-2"
    (checkpoints / LATEST).unlink()  # without `latest` nothing says a save finished
    with pytest.raises(CheckpointError):
        choose_checkpoint(checkpoints)


def test_latest_never_names_a_checkpoint_whose_save_failed(
        rank: LearnerRank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "ckpt"
    _save(rank, directory, 1)
    # version-2 fails inside DeepSpeed's write: its model file cannot be created
    (directory / "version-2" / MODEL_STATES).mkdir(parents=True)
    with pytest.raises(RuntimeError, match="Is a directory"):
        _save(rank, directory, 2)
    assert read_latest(directory) == "version-1"
    assert choose_checkpoint(directory).tag == "version-1"
    (directory / "version-2" / MODEL_STATES).rmdir()

    # ... or after every file is written, in the commit's first step
    def killed(*args: object) -> None:
        raise KeyboardInterrupt("killed while committing")

    monkeypatch.setattr(checkpoint, "write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        _save(rank, directory, 2)
    assert (directory / "version-2" / MODEL_STATES).is_file()
    assert read_latest(directory) == "version-1"
    assert choose_checkpoint(directory).tag == "version-1"
    monkeypatch.undo()
    assert Path(_save(rank, directory, 2)).name == "version-2"  # and saving again works
    assert read_latest(directory) == "version-2"


def test_rewriting_the_torn_checkpoint_latest_names_never_leaves_latest_on_it(
        checkpoints: Path, rank: LearnerRank) -> None:
    """A resume fell back from torn version-2 to version-1; the run saves version-2 again
    and is killed midway: the rewrite must not be taken for a complete checkpoint."""
    _truncate(checkpoints / "version-2" / MODEL_STATES)
    assert rank.load(checkpoints).policy_version == 1
    (checkpoints / "version-2" / MODEL_STATES).unlink()
    (checkpoints / "version-2" / MODEL_STATES).mkdir()  # the rewrite fails in DeepSpeed
    with pytest.raises(RuntimeError, match="Is a directory"):
        _save(rank, checkpoints, 2)
    choice = choose_checkpoint(checkpoints)
    assert choice.tag == "version-1" and f"{LATEST} is missing" in choice.note


def test_a_checkpoint_of_another_model_is_refused_in_one_line(
        two_versions: Path, lm_path: Path, bigger_lm_path: Path, tmp_path: Path) -> None:
    tag_dir = two_versions / "version-2"
    # the driver's check (before any actor) agrees with what the rank recorded ...
    assert model_mismatch(tag_dir, parameter_shapes(meta_backbone(ModelConfig(path=str(lm_path)))),
                          str(lm_path)) is None
    # ... and names both models when they differ
    bigger = parameter_shapes(meta_backbone(ModelConfig(path=str(bigger_lm_path))))
    message = model_mismatch(tag_dir, bigger, str(bigger_lm_path))
    assert message and "\n" not in message
    assert str(tag_dir) in message and str(bigger_lm_path) in message
    assert "128" in message and "256" in message  # the hidden sizes of 0.5m and 5m

    big_rank = _learner(bigger_lm_path)
    with pytest.raises(CheckpointError, match="holds another model") as error:
        big_rank.load(two_versions)
    assert "128" in str(error.value) and "256" in str(error.value)
    # a checkpoint from before manifests: DeepSpeed's size error, turned into one line
    legacy = Path(shutil.copytree(two_versions, tmp_path / "legacy"))
    (legacy / "version-2" / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="holds another model") as error:
        big_rank.load(legacy)
    assert "size mismatch" in str(error.value) and "\n" not in str(error.value)


def _resume(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cluster.main", "--resume", str(run_dir)],
                          cwd=ROOT, env=job_env(), capture_output=True, text=True, timeout=300)


def _run_dir(tmp_path: Path, model: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    config = load_settings(ExperimentConfig, DEMO, [f"run_dir={run}", f"model={model}", "sft=null"])
    dump_settings(config, run / "config.yaml")
    return run


def _assert_one_line(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_resume_of_a_directory_that_is_not_a_run_fails_in_one_line(tmp_path: Path) -> None:
    result = _resume(tmp_path)
    _assert_one_line(result, f"--resume {tmp_path}: not a run directory", "config.yaml")


def test_resume_of_a_run_without_or_with_another_models_checkpoint_fails_in_one_line(
        tmp_path: Path, two_versions: Path, bigger_lm_path: Path) -> None:
    run = _run_dir(tmp_path, bigger_lm_path)
    _assert_one_line(_resume(run), "no learner checkpoint in", str(run / "checkpoints"))
    shutil.copytree(two_versions, run / "checkpoints")
    config_before = (run / "config.yaml").read_text()
    _assert_one_line(_resume(run), "holds another model than", str(bigger_lm_path), "128", "256")
    assert (run / "config.yaml").read_text() == config_before  # a refused resume changes nothing
