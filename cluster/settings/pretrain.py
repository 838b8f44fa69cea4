"""Pretraining settings, and where the base model they make is kept (`revisor pretrain`).

The base is stored under `pretrain.cache_dir` in a directory named by the hash of every
setting that shapes it, so a second study or job with the same settings finds it there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import InitErrorDetails, PydanticCustomError

from contracts.tasks import BUILT_IN_SOURCES, TaskConfig
from envs.corpora import Corpus, corpus_version
from envs.general_points.corpus import CorpusConfig
from envs.general_points.vision_corpus import VisionCorpusConfig
from envs.virl.corpus import VIRLCorpusConfig
from envs.virl.vision_corpus import VIRLVisionCorpusConfig
from learner.config import DeepSpeedConfig, OptimConfig

BASE_RECORD = "base.json"
"""The file in a base's directory that says what made it (its key and settings)."""


class PretrainConfig(BaseModel):
    """Pretraining of the tiny model named by `tiny_model` on the generated corpus."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    corpus: Corpus = CorpusConfig()
    """The generated corpus: GeneralPoints' (`task: gp`, the default), V-IRL's (`task:
    virl`), or the pictures of GP-VL or V-IRL-VL (`kind: vision`, for a vision `tiny_model`);
    its task must be the experiment's."""
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(64, ge=1)
    optim: OptimConfig = OptimConfig(lr=3e-3, schedule="cosine", warmup_ratio=0.03)
    engine: DeepSpeedConfig = DeepSpeedConfig(micro_batch_size=32)
    seed: int = 0
    num_ranks: int | None = Field(None, ge=1)
    """Data-parallel ranks; None: learner.num_ranks. Pretraining runs before any rollout
    worker exists, so it may take every CPU (or GPU) the learner and workers later share."""
    probe_documents: int = Field(192, ge=0)
    """Held-out corpus documents the finished base answers greedily, scored per kind and
    rule in its report and base.json (cluster/job/base_probe.py); 0: none."""
    cache_dir: Path = Path("runs/bases")
    """Where pretrained bases are kept, one directory per distinct settings."""


def base_key(pretrain: PretrainConfig, tiny_model: BaseModel) -> str:
    """A short hash of everything that shapes the base model (not where it is kept, how
    many ranks share its batches or how it is probed). The corpus's kind is in it through its version; a
    GeneralPoints corpus leaves its `task` out, so bases cached before V-IRL had a corpus
    keep their keys."""
    excluded: dict = {"cache_dir": True, "num_ranks": True, "probe_documents": True}
    if isinstance(pretrain.corpus, CorpusConfig):
        excluded["corpus"] = {"task": True}
    shape = {"corpus_version": corpus_version(pretrain.corpus),
             "tiny_model": tiny_model.model_dump(mode="json"),
             "pretrain": pretrain.model_dump(mode="json", exclude=excluded)}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]


def corpus_problems(pretrain: PretrainConfig,
                    tasks: dict[str, TaskConfig]) -> list[InitErrorDetails]:
    """Where the corpus does not fit the experiment's tasks (`tasks`: setting path -> task),
    one error at the corpus field to change: a corpus of another task than the training
    task's, a vision corpus for a task without images or unlike its pictures or wording, or
    V-IRL corpus cities that a task walks (pretraining on an evaluation's city would let the
    base recall its routes)."""
    corpus, errors = pretrain.corpus, []
    train = tasks["task"].task
    if corpus.task != train:
        errors.append(_error(("task",), corpus.task,
                             f"a '{corpus.task}' corpus cannot pretrain for the '{train}' "
                             f"task; set pretrain.corpus.task: {train}"))
    if isinstance(corpus, PictureCorpus):
        errors += _vision_problems(corpus, tasks["task"])
    if isinstance(corpus, VIRLCorpusConfig | VIRLVisionCorpusConfig):
        errors += _city_problems(corpus, tasks)
    return errors


def _city_problems(corpus: VIRLCorpusConfig | VIRLVisionCorpusConfig,
                   tasks: dict[str, TaskConfig]) -> list[InitErrorDetails]:
    """Corpus cities that a task walks."""
    seeds, errors = corpus.world_seeds, []
    for where, task in tasks.items():
        if task.task == "virl" and task.route_source in BUILT_IN_SOURCES \
                and task.world_seed in seeds:
            errors.append(_error(("world_seed_start",), corpus.world_seed_start,
                                 f"corpus cities (world seeds {seeds.start}.."
                                 f"{seeds.stop - 1}) include {where}.world_seed "
                                 f"{task.world_seed}; move world_seed_start past it"))
    return errors


PictureCorpus = VisionCorpusConfig | VIRLVisionCorpusConfig
_MATCHED = {VisionCorpusConfig: ("prompt_template", "target"),
            VIRLVisionCorpusConfig: ("image_tile_px", "image_style", "max_history_steps",
                                     "max_forward_steps", "forward_step_m", "world",
                                     "prompt_template")}
"""The task settings a picture corpus's `prompt` must share with the task: what shapes its
prompts (and V-IRL-VL's views and walk); the rule is drawn per document."""
_FOR = {VisionCorpusConfig: "GP-VL", VIRLVisionCorpusConfig: "V-IRL-VL"}


def _vision_problems(corpus: PictureCorpus, task: TaskConfig) -> list[InitErrorDetails]:
    """A picture corpus for a task that shows none, or unlike the task's pictures or wording
    (the base would learn pictures or prompts the task never shows): one error per differing
    setting, at corpus.image or corpus.prompt.<setting>."""
    if not getattr(task, "vision", False):
        return [_error(("kind",), corpus.kind, f"a vision corpus pretrains for "
                       f"{_FOR[type(corpus)]} (task.vision: true); this task shows no images: "
                       "leave corpus.kind unset")]
    if isinstance(corpus, VisionCorpusConfig) and corpus.image != task.image:
        return [_error(("image",), corpus.image.model_dump(),
                       f"the task draws its hands as {task.image.model_dump()}; draw the "
                       "corpus's the same way")]
    errors = []
    for name in _MATCHED[type(corpus)]:
        said, asked = getattr(corpus.prompt, name), getattr(task, name)
        if said != asked:
            errors.append(_error(("prompt", name), _plain(said), f"the task's {name} is "
                                 f"{_plain(asked)}; set the corpus's the same"))
    return errors


def _plain(value: object) -> object:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _error(field: tuple[str, ...], value: object, message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("corpus_mismatch", message),
                            loc=("pretrain", "corpus", *field), input=value)


def base_path(pretrain: PretrainConfig, tiny_model: BaseModel) -> Path:
    """Where the base model of these settings lives (the experiment's `model` by default)."""
    spec, key = tiny_model.model_dump(), base_key(pretrain, tiny_model)
    return pretrain.cache_dir / f"base-{spec['kind']}-{spec['size']}-{key}"
