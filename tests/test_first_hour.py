"""What a new user meets in the first hour: one `revisor` command with a line of help per
subcommand that answers at once, and every bad input refused in one line (what is wrong,
what to do), exit status 2, before any actor starts and without touching existing files.

No test here starts Ray or vLLM: each bad input must be refused before that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cluster.cli import SUBCOMMANDS
from cluster.cli import main as cli_main
from tests.jobs import DEMO, ROOT

ARCHITECTURE_ONLY = ROOT / "configs" / "models" / "llama-3.2-11b-vision-instruct"


def one_line(text: str) -> str:
    """The single line a refused command printed (the test fails on more)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_help_of_revisor_and_of_every_command_imports_no_torch() -> None:
    """Arguments are parsed before anything heavy is imported: `--help` of each command
    (run in one interpreter, one after the other) loads neither torch, Ray nor vLLM."""
    script = (
        "import contextlib, io, json, sys\n"
        "from cluster.cli import SUBCOMMANDS, main\n"
        "heavy = {}\n"
        "for argv in [['--help']] + [[name, '--help'] for name in SUBCOMMANDS]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "    heavy[argv[0]] = [m for m in ('torch', 'ray', 'vllm', 'transformers')"
        " if m in sys.modules]\n"
        "print(json.dumps(heavy))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=True)
    heavy = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(heavy) == {"--help", *SUBCOMMANDS}
    assert all(loaded == [] for loaded in heavy.values()), heavy


def test_revisor_help_lists_every_command_in_a_line(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert sum(line.split()[:1] == [name] for line in out.splitlines()) == 1, name
    assert "run" in SUBCOMMANDS and SUBCOMMANDS["run"][0] == "cluster.main"


def test_an_unknown_command_says_so_and_suggests_one(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["train"]) == 2
    assert one_line(capsys.readouterr().err) == (
        "revisor: unknown command 'train' (did you mean 'revisor run'?); revisor --help lists "
        "the commands")
    assert cli_main(["studdy"]) == 2
    assert "did you mean 'revisor study'?" in capsys.readouterr().err


def test_run_without_config_says_which_argument_is_missing(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["run"])
    assert exit_.value.code == 2
    assert ("revisor run: error: give --config FILE.yaml (the experiment's settings, e.g. "
            "configs/cpu_demo.yaml) or --resume RUN_DIR") in capsys.readouterr().err


def test_an_unknown_key_is_blamed_on_the_override_with_a_suggestion(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["run", "--config", str(DEMO), f"run_dir={tmp_path / 'run'}",
                     "trainig.updates=3"])
    assert code == 2
    assert one_line(capsys.readouterr().err) == (
        "revisor: override trainig.updates=3: unknown setting 'trainig' (did you mean "
        "'training.updates'?)")
    assert not (tmp_path / "run").exists()


def test_an_unknown_key_of_a_task_is_named_without_the_union_tag(
        capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["plan", "--config", str(DEMO), "task.rulee=ood"]) == 2
    assert one_line(capsys.readouterr().err) == (
        "revisor plan: override task.rulee=ood: unknown setting 'task.rulee' (did you mean "
        "'task.rule'?)")


def test_a_tiny_model_is_not_built_at_a_path_whose_parent_is_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "missing" / "typo"
    code = cli_main(["run", "--config", str(DEMO), f"run_dir={tmp_path / 'run'}",
                     f"model={missing}"])
    assert code == 2
    assert one_line(capsys.readouterr().err) == (
        f"revisor: model {missing}: no checkpoint there and its parent {missing.parent} does not "
        "exist (a typo?); tiny_model builds a new model only in an existing directory, the "
        "run_dir or runs/: fix the path or create its parent")
    assert not (tmp_path / "run").exists() and not missing.parent.exists()


def test_where_a_tiny_model_may_be_built(tmp_path: Path) -> None:
    """An existing parent, the run directory or runs/ (the demo: runs/cpu-demo/model, built
    on first run even when run_dir is elsewhere); nowhere else."""
    from cluster.settings.experiment import ExperimentConfig
    from cluster.settings.loading import load_settings
    from cluster.settings.model_checks import build_place_problem

    def problem(model: Path | str, run_dir: Path) -> str | None:
        return build_place_problem(load_settings(ExperimentConfig, DEMO, [
            f"model={model}", f"run_dir={run_dir}"]))

    run = tmp_path / "run"
    assert problem(tmp_path / "model", run) is None
    assert problem(run / "models" / "tiny", run) is None
    assert problem("runs/cpu-demo/model", run) is None
    assert problem(tmp_path / "a" / "b", run) is not None


def test_a_model_directory_without_weights_is_refused_before_start(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    code = cli_main(["run", "--config", str(DEMO), f"run_dir={run}",
                     f"model={ARCHITECTURE_ONLY}", "tiny_model=null"])
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"revisor: model {ARCHITECTURE_ONLY}: holds config.json but no "
                           "weights (*.safetensors or pytorch_model*.bin) and no tokenizer")
    assert not run.exists()


def test_plan_accepts_an_architecture_only_directory(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["plan", "--config", str(ROOT / "configs" / "paper" / "gp-l.yaml")]) == 0
    assert "fits" in capsys.readouterr().out


def test_plan_refuses_what_the_job_refuses_and_leaves_no_scratch_model(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    model = tmp_path / "model"
    code = cli_main(["plan", "--config", str(DEMO), f"model={model}", "task.vision=true"])
    assert code == 2
    assert one_line(capsys.readouterr().err) == (
        f"revisor plan: settings do not fit the model at {model}: task, sft.task: a "
        f"vision-language task needs a vision-language model; {model} is a text model (llama): "
        "point model at a vision-language checkpoint, or train a text task")
    assert cli_main(["plan", "--config", str(DEMO), f"model={model}"]) == 0
    assert list(scratch.iterdir()) == [] and not model.exists()


def test_import_gguf_of_a_file_that_is_not_gguf(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    assert cli_main(["import-gguf", str(notes), "--out", str(tmp_path / "out")]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"revisor import-gguf: {notes}: not a GGUF file (it does not start with the GGUF magic "
        "bytes); give a .gguf model file, e.g. from a llama.cpp export")
    assert not (tmp_path / "out").exists()


def test_tiny_model_refuses_a_file_and_a_non_empty_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    file = tmp_path / "file"
    file.write_text("keep me")
    assert cli_main(["tiny-model", "--out", str(file)]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"revisor tiny-model: --out {file} is a file, not a directory: give a new or empty "
        "directory")
    assert file.read_text() == "keep me"
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "model.safetensors").write_text("another model's weights")
    assert cli_main(["tiny-model", "--out", str(other)]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"revisor tiny-model: --out {other} is not empty: pass --force to replace what it "
        "holds, or give a new or empty directory")
    assert (other / "model.safetensors").read_text() == "another model's weights"


def test_tiny_model_force_replaces_what_the_directory_held(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "model"
    out.mkdir()
    (out / "preprocessor_config.json").write_text("{}")  # another model's processor
    assert cli_main(["tiny-model", "--out", str(out), "--force"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(out)
    assert (out / "config.json").exists() and not (out / "preprocessor_config.json").exists()


def test_play_refuses_a_task_name_it_does_not_know_and_a_negative_count(
        capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["play", "--task", "gp-vl"]) == 2
    assert one_line(capsys.readouterr().err) == (
        "revisor play: --task 'gp-vl' is not a task (did you mean 'gp'?): give a task name "
        "(gp, virl) or its settings as JSON, e.g. '{\"task\": \"gp\", \"vision\": true}'")
    with pytest.raises(SystemExit) as exit_:
        cli_main(["play", "--episodes", "-1"])
    assert exit_.value.code == 2
    assert ("argument --episodes: -1 is not a count of episodes: give 1 or more"
            in capsys.readouterr().err)


def test_study_resume_of_a_missing_directory_names_the_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nonexistent"
    assert cli_main(["study", "--resume", str(missing)]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"revisor study: --resume {missing}: not a study directory (it does not exist); give "
        "the study_dir of a study started with --config")
    assert not missing.exists()


def test_report_of_a_run_without_results(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("name: started\n")
    assert cli_main(["report", str(run)]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"revisor report: no results in {run} (no evaluations.parquet and no training.jsonl): "
        "give the run_dir of a job that has evaluated or trained")
    assert sorted(path.name for path in run.iterdir()) == ["config.yaml"]
