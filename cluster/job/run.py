"""One training job, start to end: settings checked against the run directory and the model,
the model built or imported when asked for, SFT warm start, RL with evaluations, the summary
and the report. `revisor run` (`python -m cluster.main`) and `revisor study` run jobs through
here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from cluster.job.phases import rl_phase, sft_phase
from cluster.job.pretrain import ensure_pretrained
from cluster.job.runtime import ray_cluster
from cluster.results.compute import TokenCounts, training_gflops
from cluster.results.evaluations import (
    OPTIONAL_MEASURES,
    EvalPoint,
    success_change,
    write_evaluations,
)
from cluster.results.recall import SFTData, recall_splits
from cluster.results.report import write_report
from cluster.settings.answer_room import answer_room_warnings
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError, dump_settings, load_settings
from cluster.settings.model_checks import check_against_model, check_model_source
from learner.checkpoint_manifest import (
    CheckpointChoice,
    CheckpointError,
    choose_checkpoint,
    model_mismatch,
)
from learner.model import count_parameters, meta_backbone, parameter_shapes
from rollout_workers.gguf_import import GGUFImportError, import_gguf, packaged_gguf
from rollout_workers.tiny_models import save_tiny_model

console = Console()


def resolve_settings(args: argparse.Namespace) -> ExperimentConfig:
    if args.resume:
        check_run_dir(args.resume)
        return load_settings(ExperimentConfig, args.resume / "config.yaml", args.overrides)
    return load_settings(ExperimentConfig, args.config, args.overrides)


def check_run_dir(run_dir: Path) -> None:
    """`--resume` of a directory that no job made fails here in one line, before Ray starts."""
    if not (run_dir / "config.yaml").is_file():
        raise SettingsError(f"--resume {run_dir}: not a run directory (it has no config.yaml); "
                            "give the run_dir of a job started with --config")


def resume_point(config: ExperimentConfig) -> CheckpointChoice:
    """The checkpoint a resume will load; a run without a complete one fails here, in one
    line, before a model is built or any actor starts."""
    try:
        return choose_checkpoint(Path(config.run_dir) / "checkpoints")
    except CheckpointError as error:
        raise SettingsError(f"--resume {config.run_dir}: {error}") from None


def check_checkpoint_fits(config: ExperimentConfig, choice: CheckpointChoice) -> None:
    """A checkpoint of another model than the configured one (an edited config.yaml, an
    override of the model) fails here in one line; the ranks would fail deep inside a load."""
    shapes = parameter_shapes(meta_backbone(config.learner.model))
    mismatch = model_mismatch(Path(choice.directory) / choice.tag, shapes, config.model)
    if mismatch:
        raise SettingsError(f"--resume {config.run_dir}: {mismatch}")


def prepare_job(config: ExperimentConfig, resume: bool) -> None:
    """The run directory and the model, checked against each other. A resume checks its
    checkpoint before rewriting the run's config.yaml, so a refused resume changes nothing;
    a new run refuses an existing run directory before building a model. Where the model
    comes from is checked first, before anything is written."""
    check_model_source(config)
    if resume:
        choice = resume_point(config)
        ensure_model(config)
        check_against_model(config)
        check_checkpoint_fits(config, choice)
        prepare_run_dir(config, resume)
        warn_answer_room(config)
        return
    prepare_run_dir(config, resume)
    ensure_model(config)
    check_against_model(config)
    warn_answer_room(config)


def warn_answer_room(config: ExperimentConfig) -> None:
    """Say where max_tokens would cut the expert's answers off (cluster/settings/answer_room.py)."""
    for warning in answer_room_warnings(config):
        console.print(f"[yellow]warning:[/yellow] {warning}")


def prepare_run_dir(config: ExperimentConfig, resume: bool) -> None:
    run_dir = Path(config.run_dir)
    if not resume and (run_dir / "checkpoints").exists():
        raise SettingsError(f"run_dir {run_dir} already holds a run; pass --resume {run_dir} to "
                            "continue it or choose another run_dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_settings(config, run_dir / "config.yaml")


def ensure_model(config: ExperimentConfig) -> None:
    """Build the configured tiny model, or import the configured GGUF file, at `model` when
    asked to and not there yet."""
    if config.pretrain is not None:
        ensure_pretrained(config)
        return
    if (Path(config.model) / "config.json").exists():
        return
    if config.tiny_model is not None:
        spec = config.tiny_model
        save_tiny_model(spec.kind, spec.size, Path(config.model), seed=spec.seed)
        console.print(f"built a tiny {spec.kind} ({spec.size}) at {config.model}")
    elif config.gguf is not None:
        source = config.gguf
        try:
            path = Path(source.file) if source.file else packaged_gguf(source.package)
            report = import_gguf(path, Path(config.model))
        except GGUFImportError as error:
            raise SettingsError(f"gguf: {error}") from None
        console.print(f"imported {path.name} ({report.parameters:,} parameters) to "
                      f"{config.model} in {report.seconds:.0f} s")


def run_job(config: ExperimentConfig, resume: bool = False) -> dict:
    """Run the whole job; returns the summary also written to RUN_DIR/summary.json."""
    run_dir = Path(config.run_dir)
    prepare_job(config, resume)
    parameters = count_parameters(config.learner.model)
    with ray_cluster(config.cluster):
        if config.sft and not resume:
            console.print(f"SFT: {config.sft.steps} steps of {config.sft.batch_size} demonstrations")
        sft = sft_phase(config, parameters) if config.sft and not resume else None
        tokens = sft.tokens if sft else TokenCounts()
        points: list[EvalPoint] = list(sft.evaluations) if sft else []
        if config.arm == "rl":
            if sft:
                config = config.model_validate({**config.model_dump(), "model": sft.checkpoint})
            rl = rl_phase(config, parameters, TokenCounts(init=tokens.sft + tokens.init), resume)
            points += rl.evaluations
            tokens = rl.tokens
    write_evaluations(run_dir, points)
    summary = summarise(points, parameters, tokens, recall=split_by_recall(config, points))
    if config.arm == "rl":
        summary["episodes"] = rl.episodes
        summary["worker_restarts"] = rl.restarts
        summary["env_actor_restarts"] = rl.env_actor_restarts
        summary["policy_version"] = rl.policy_version
        summary["rollout_engine"] = rl.engines
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    report = write_report([run_dir], run_dir / "report")
    console.print(f"[bold]report:[/bold] {report}")
    return summary


def split_by_recall(config: ExperimentConfig, points: list[EvalPoint]) -> dict[tuple, dict]:
    """(arm, phase, split) -> success per group of what SFT showed (cluster/results/recall.py)."""
    if config.sft is None:
        return {}
    sft = SFTData.model_validate(config.sft, from_attributes=True)
    return {(point.arm, point.phase, point.split): {
                name: {"episodes": group.episodes, "success": group.success}
                for name, group in groups.items()}
            for point, groups in recall_splits(sft, config.evaluation, points)}


def summarise(points: list[EvalPoint], parameters: int, tokens: TokenCounts,
              recall: dict[tuple, dict] | None = None) -> dict:
    """{"sft": {"id": {"success", "n"}, ...}, "rl": {...}, "gflops": {...}} of the last points;
    `recall` adds each point's success by what SFT showed ("by_sft_recall")."""
    recall = recall or {}
    summary: dict = {"parameters": parameters, "tokens": tokens.model_dump(),
                     "gflops": {"total": training_gflops(parameters, tokens)}}
    for point in points:
        key = "rl" if point.arm == "rl" and point.phase != "init" else "sft"
        summary.setdefault(key, {})[point.split] = {
            "success": point.success, "n": point.episodes, "stderr": point.stderr,
            "success_by_turn": point.success_by_turn, "phase": point.phase,
            "temperature": point.temperature,
            **{name: value for name in OPTIONAL_MEASURES
               if (value := getattr(point, name)) is not None},
            **({"by_sft_recall": groups}
               if (groups := recall.get((point.arm, point.phase, point.split))) else {})}
        summary["gflops"][key] = point.gflops
    summary["change"] = success_changes(points)
    return summary


def success_changes(points: list[EvalPoint]) -> dict:
    """Per split: success of the last point minus the first (RL after against its SFT init),
    with the error bar of that difference."""
    by_split: dict[str, list[EvalPoint]] = {}
    for point in points:
        by_split.setdefault(point.split, []).append(point)
    return {split: success_change(run[0], run[-1]).model_dump()
            for split, run in by_split.items() if len(run) > 1}


def job(args: argparse.Namespace) -> dict:
    """The job the command line asks for. A checkpoint found unusable only once the ranks
    load it is reported as a settings error too: one line, not an actor's traceback."""
    try:
        return run_job(resolve_settings(args), resume=args.resume is not None)
    except CheckpointError as error:
        raise SettingsError(f"--resume {args.resume}: {error}" if args.resume
                            else str(error)) from None
