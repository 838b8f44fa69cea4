"""`revisor plan`: where a configuration's processes run and whether their memory fits.

A run that does not fit fails minutes into its allocation, after the model has been loaded:
an optimizer step out of GPU memory, a vLLM engine without room for one sequence's KV cache.
The plan reads only the model's config.json (parameters are counted from it, without torch or
transformers, for the families Revisor runs: cluster.settings.config_json), so it runs anywhere,
in seconds, and says which process is over by how much and what to change. It starts
nothing: no Ray, no engine, no weights, no tokenizer.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from cluster.plan.advice import problems_of
from cluster.plan.memory import (
    GIB,
    LearnerSetup,
    ProcessEstimate,
    RolloutSetup,
    learner_estimate,
    rollout_estimate,
)
from cluster.plan.model_shape import ModelShape, read_shape
from cluster.plan.outcome import GpuLoad, Plan
from cluster.plan.placement import Placement, place
from cluster.plan.report import render
from cluster.settings.config_json import read_config_json
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError
from cluster.settings.model_checks import tasks_of
from cluster.settings.study import load_experiment
from rollout_workers.engine.factory import unservable_reason_of


def plan_experiment(config: ExperimentConfig) -> Plan:
    """Place the processes and estimate their memory; nothing is started or loaded."""
    config = with_model_config(config)
    shape = read_shape(config.model, config.learner.model.trust_remote_code)
    gpu_bytes = int(config.cluster.gpu_memory_gib * GIB)
    placement = place_processes(config)
    learner = learner_estimate(shape, learner_setup(config, shape, gpu_bytes))
    sft = sft_estimate(config, shape, gpu_bytes, learner)
    engine, note = rollout_engine(config)
    rollout = rollout_estimate(shape, RolloutSetup(
        engine=config.engine, vllm=engine == "vllm", on_gpu=config.cluster.gpus_per_worker > 0,
        gpu_bytes=gpu_bytes, sequences=config.rollout.episodes_in_flight,
        answer_tokens=config.rollout.sampling.max_tokens, images_per_sequence=images(config)))
    loads = gpu_loads(placement, learner, rollout, gpu_bytes)
    plan = Plan(name=config.name, model_path=config.model, model=shape, placement=placement,
                learner=learner, sft_learner=sft, rollout=rollout,
                rollout_engine=engine, rollout_engine_note=note,
                sft_as_learner=config.sft is not None and sft is None,
                gpu_loads=loads, gpu_memory_bytes=gpu_bytes, problems=[])
    return plan.model_copy(update={"problems": problems_of(config, plan)})


def with_model_config(config: ExperimentConfig) -> ExperimentConfig:
    """A tiny model the job would build first (CPU demos) is built into a scratch directory
    (seconds), so that its config.json can be read; any other path is used as it is."""
    if Path(config.model).exists() or config.tiny_model is None:
        return config
    # deferred: building a tiny model needs torch and transformers, which plan otherwise never loads
    from rollout_workers.tiny_models import save_tiny_model

    tiny = config.tiny_model
    path = save_tiny_model(tiny.kind, tiny.size, Path(tempfile.mkdtemp(prefix="revisor-plan-")),
                           seed=tiny.seed)
    return ExperimentConfig.model_validate({**config.model_dump(), "model": str(path)})


def place_processes(config: ExperimentConfig) -> Placement:
    learner, cluster = config.learner, config.cluster
    tp = config.engine.tensor_parallel_size
    worker_gpus = cluster.gpus_per_worker
    if worker_gpus and config.engine.kind == "vllm" and tp > 1:  # one GPU per TP rank
        worker_gpus = max(worker_gpus, tp)
    requests = ([("learner", i, learner.gpus_per_rank) for i in range(learner.num_ranks)]
                + [("rollout", i, worker_gpus) for i in range(cluster.rollout_workers)])
    return place(requests, cluster.gpus_per_node, cluster.num_nodes, tp)


def images(config: ExperimentConfig) -> int:
    """Images in one prompt when any task shows images (the engine's per-prompt limit)."""
    vision = any(getattr(task, "vision", False) for _, task in tasks_of(config))
    return config.engine.max_images_per_prompt if vision else 0


def learner_setup(config: ExperimentConfig, shape: ModelShape, gpu_bytes: int) -> LearnerSetup:
    learner = config.learner
    on_gpu = learner.gpus_per_rank > 0
    width = learner.model.value_head_hidden or min(shape.hidden_size, 1024)
    extra = 0
    if learner.model.critic == "separate":  # its backbone without the LM head
        extra = shape.parameters - shape.vocab_size * shape.hidden_size
    return LearnerSetup(
        ranks=learner.num_ranks, engine=learner.engine, on_gpu=on_gpu,
        gradient_checkpointing=learner.model.gradient_checkpointing,
        sequence_tokens=config.engine.max_model_len,
        answer_tokens=config.rollout.sampling.max_tokens, images_per_turn=images(config),
        value_head_parameters=shape.hidden_size * width + 2 * width + 1,
        extra_parameters=extra, limit_bytes=gpu_bytes if on_gpu else None)


def sft_estimate(config: ExperimentConfig, shape: ModelShape, gpu_bytes: int,
                 rl: ProcessEstimate) -> ProcessEstimate | None:
    """The SFT ranks (same rank count and GPUs, SFT's own engine settings, no value head);
    None when there is no SFT phase or it needs no more than the RL learner."""
    if config.sft is None:
        return None
    base = learner_setup(config, shape, gpu_bytes)
    setup = base.model_copy(update={
        "role": "SFT learner rank", "engine": config.sft.engine, "value_head_parameters": 0,
        "extra_parameters": 0, "gradient_checkpointing": config.sft.model.gradient_checkpointing,
        "answer_tokens": config.sft.max_answer_tokens})
    estimate = learner_estimate(shape, setup)
    same = (setup.engine, setup.gradient_checkpointing) == (base.engine, base.gradient_checkpointing)
    return None if same and estimate.total_bytes <= rl.total_bytes else estimate


def rollout_engine(config: ExperimentConfig) -> tuple[str, str]:
    """The engine the workers will run ('vllm' or 'hf'), and what chose it (from config.json
    alone, as the engine factory would decide it)."""
    reason = unservable_reason_of(read_config_json(config.model))
    unservable = reason.split(":")[0] if reason else ""
    if config.engine.kind == "hf":
        return "hf", "engine.kind=hf" + (f"; {unservable}" if unservable else "")
    if unservable:
        return "hf", f"engine.kind=vllm, but {unservable}"
    return "vllm", f"tensor parallel {config.engine.tensor_parallel_size}"


def gpu_loads(placement: Placement, learner: ProcessEstimate, rollout: ProcessEstimate,
              gpu_bytes: int) -> list[GpuLoad]:
    loads = []
    for gpu in placement.gpus_used:
        on = placement.on(gpu)
        total = sum((learner if p.role == "learner" else rollout).total_bytes for p in on)
        loads.append(GpuLoad(gpu=gpu, processes=[p.label for p in on], bytes=total,
                             capacity_bytes=gpu_bytes))
    return loads


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="revisor plan", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True,
                        help="experiment or study settings (YAML)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value settings")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """0: it fits; 1: something does not fit (named, with what to change); 2: bad settings."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_experiment(args.config, args.overrides)
        plan = plan_experiment(config)
    except SettingsError as error:
        print(f"revisor plan: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"revisor plan: model: cannot read a model config from {config.model!r} ({error})",
              file=sys.stderr)
        return 2
    print(render(plan))
    return 0 if plan.fits else 1

