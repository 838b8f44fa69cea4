"""`revisor pretrain`: a base model with general skills, made on the machine, cached by settings.

    revisor pretrain --config configs/study/cpu-gp-l.yaml     # a study or experiment file

A tiny model (`tiny_model`) is trained on Revisor's generated corpus of the experiment's task
(`pretrain.corpus`: envs/general_points/corpus.py or envs/virl/corpus.py) with the SFT trainer
on the learner's ranks, before any study or job uses it. The result is stored under
`pretrain.cache_dir` in a directory named by the hash of every setting that shapes it, so a
second study or job with the same settings finds it there and does not pretrain again. The directory appears only when complete (a stopped run
leaves `<name>.partial`, redone next time), with `base.json` saying what made it and how it
answers held-out corpus documents (cluster/job/base_probe.py, printed at the end of the run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError
from cluster.settings.pretrain import BASE_RECORD, base_key
from cluster.settings.study import load_experiment
from envs.corpora import corpus_version
from learner.config import ModelConfig, SFTConfig

console = Console()


def ensure_pretrained(config: ExperimentConfig) -> Path:
    """The experiment's base model: found in the cache, or pretrained now and stored there."""
    pretrain, model = config.pretrain, Path(config.model)
    key = base_key(pretrain, config.tiny_model)
    if (model / "config.json").exists():
        recorded = json.loads((model / BASE_RECORD).read_text()).get("key") \
            if (model / BASE_RECORD).exists() else None
        if recorded != key:
            raise SettingsError(f"model {model} holds a checkpoint that these pretrain settings "
                                f"did not make (its {BASE_RECORD} key {recorded}, the settings' "
                                f"{key}): choose another model path or leave it unset")
        console.print(f"pretrained base found at {model} (settings hash {key})")
        return model
    return _pretrain(config, key)


def _pretrain(config: ExperimentConfig, key: str) -> Path:
    # Imported here: the ranks' modules load torch, Ray and DeepSpeed, `--help` must not wait.
    from cluster.job.phases import LogFollower
    from cluster.job.resources import ensure_resources, learner_request
    from cluster.job.runtime import ray_cluster
    from learner.group import run_sft_on_ranks
    from learner.sft import PROGRESS_LOG
    from rollout_workers.tiny_models import save_tiny_model

    pretrain, model, spec = config.pretrain, Path(config.model), config.tiny_model
    work = model.with_name(model.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    save_tiny_model(spec.kind, spec.size, work / "init", seed=spec.seed)
    sft = SFTConfig(model=ModelConfig(path=str(work / "init")), corpus=pretrain.corpus,
                    steps=pretrain.steps, batch_size=pretrain.batch_size, optim=pretrain.optim,
                    engine=pretrain.engine, seed=pretrain.seed, eval_episodes=0, eval_every=0,
                    checkpoint_every=0, output_dir=work / "train")
    console.print(f"pretraining a tiny {spec.kind} ({spec.size}) on {pretrain.corpus.documents} "
                  f"corpus documents: {pretrain.steps} steps of {pretrain.batch_size}")
    start = time.perf_counter()
    learner = config.learner
    with ray_cluster(config.cluster):
        ranks = pretrain.num_ranks or learner.num_ranks
        ensure_resources([learner_request("pretraining ranks", ranks, learner.cpus_per_rank,
                                          learner.gpus_per_rank,
                                          custom=config.cluster.learner_resources)], config)
        result = run_sft_on_ranks(sft, ranks, learner.cpus_per_rank, learner.gpus_per_rank,
                                  metrics=config.metrics,
                                  on_progress=LogFollower(work / "train" / PROGRESS_LOG),
                                  resources=config.cluster.learner_resources)
    final = Path(result.checkpoints[-1])
    seconds = time.perf_counter() - start
    record = {**_record(config, key, result, seconds), "probe": _probe(config, final)}
    (final / BASE_RECORD).write_text(json.dumps(record, indent=1))
    final.rename(model)
    shutil.rmtree(work, ignore_errors=True)
    console.print(f"pretrained base saved at {model} (loss {record['final_loss']:.3f}, "
                  f"{record['seconds']:.0f} s)")
    return model


def _record(config: ExperimentConfig, key: str, result: Any, seconds: float) -> dict[str, Any]:
    """What base.json says of a finished base: what made it, its loss and its cost."""
    pretrain, last = config.pretrain, result.steps[-20:]
    return {"key": key, "tiny_model": config.tiny_model.model_dump(mode="json"),
            "pretrain": pretrain.model_dump(mode="json"),
            "corpus_version": corpus_version(pretrain.corpus),
            "final_loss": sum(s.loss for s in last) / len(last),
            "tokens": sum(s.tokens for s in result.steps), "seconds": round(seconds, 1)}


def _probe(config: ExperimentConfig, base: Path) -> list[dict[str, Any]]:
    """The base's answers to held-out corpus documents, printed as they are measured (the
    first sign of whether it has the study's skill) and returned for base.json."""
    from cluster.job.base_probe import probe_base, probe_table

    pretrain = config.pretrain
    rows = probe_base(base, pretrain.corpus, pretrain.probe_documents) \
        if pretrain.probe_documents else []
    if rows:
        console.print(probe_table(rows))
    return [row.model_dump() for row in rows]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="revisor pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True,
                        help="experiment or study settings (YAML) with a pretrain section")
    parser.add_argument("overrides", nargs="*", help="dotted settings, key=value")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from cluster.job.runtime import run_command  # after parsing: it imports Ray

    def job() -> Any:
        config = load_experiment(args.config, args.overrides)
        if config.pretrain is None:
            raise SettingsError(f"{args.config}: no pretrain section, nothing to pretrain")
        return ensure_pretrained(config)

    code, path = run_command("revisor pretrain", job)
    if path is not None:
        print(path)
    return code
