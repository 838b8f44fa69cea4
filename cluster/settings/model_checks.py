"""Settings checked against the checkpoint they will run, before any actor starts.

Some mistakes only show when settings meet a model: a vision-language task given a text
model, a context window longer than the model's, a chat template that does not place one
image placeholder per image. Each would otherwise fail minutes later inside an actor; here
it fails at once, naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cluster.settings.config_json import model_text_spec
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError
from contracts.tasks import TaskConfig
from envs.registry import make_episode
from rollout_workers.engine.factory import unservable_reason_of

WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def check_model_source(config: ExperimentConfig) -> None:
    """Where the model comes from, checked before the job writes anything or starts an actor:
    a checkpoint directory with weights and a tokenizer, or a place where tiny_model or gguf
    may make one. (`revisor plan` reads config.json only and skips the file check.)"""
    model = Path(config.model)
    if (model / "config.json").is_file():
        if missing := missing_checkpoint_files(model):
            raise SettingsError(f"model {model}: holds config.json but no {' and no '.join(missing)}"
                                " (an architecture-only directory `revisor plan` reads); put the "
                                "whole checkpoint there, or point model at one")
        return
    if problem := build_place_problem(config):
        raise SettingsError(problem)


def missing_checkpoint_files(model: Path) -> list[str]:
    """What a checkpoint directory lacks for the engines and the learner to load it."""
    missing = []
    if not any(any(model.glob(pattern)) for pattern in WEIGHT_FILES):
        missing.append("weights (" + " or ".join(WEIGHT_FILES) + ")")
    if not any((model / name).is_file() for name in TOKENIZER_FILES):
        missing.append("tokenizer (" + " or ".join(TOKENIZER_FILES[:2]) + ")")
    return missing


def build_place_problem(config: ExperimentConfig) -> str | None:
    """Why the model cannot be made at `model` (which holds no checkpoint), or None.

    tiny_model and gguf make the model at `model` when nothing is there. A place is taken as
    meant when its parent directory exists, or it lies inside the run directory or under
    runs/ (the places a job creates: the demo builds runs/cpu-demo/model on first run).
    Elsewhere a path whose parent is missing is far more likely a typo of a checkpoint's
    path than a wish for a fresh random model there."""
    model = Path(config.model)
    if config.tiny_model is None and config.gguf is None and config.pretrain is None:
        return (f"model: cannot load a model config from {config.model!r} (it holds no "
                "config.json); give a checkpoint directory, or tiny_model settings to build "
                "one there")
    if config.pretrain is not None or model.parent.is_dir():
        return None
    if any(_inside(model, place) for place in (Path(config.run_dir), Path("runs"))):
        return None
    maker = "tiny_model" if config.tiny_model is not None else "gguf"
    return (f"model {model}: no checkpoint there and its parent {model.parent} does not exist "
            f"(a typo?); {maker} builds a new model only in an existing directory, the run_dir "
            "or runs/: fix the path or create its parent")


def _inside(path: Path, place: Path) -> bool:
    return path.resolve().is_relative_to(place.resolve())


def check_against_model(config: ExperimentConfig) -> None:
    """Raise SettingsError listing every setting the checkpoint at `config.model` cannot run."""
    from transformers import AutoConfig

    check_model_source(config)
    try:
        hf_config = AutoConfig.from_pretrained(config.model)
    except (OSError, ValueError) as error:
        raise SettingsError(f"model: cannot load a model config from {config.model!r} ({error}); "
                            "give a checkpoint directory, or tiny_model settings to build one "
                            "there") from None
    problems = config_problems(config, hf_config)
    vision = any(getattr(task, "vision", False) for _, task in tasks_of(config))
    if vision and getattr(hf_config, "vision_config", None) is not None:
        problems += _placeholder_problems(config)
    if problems:
        raise SettingsError(misfit(config.model, problems))


def misfit(model: str, problems: list[str]) -> str:
    """The settings that do not fit a model: one line for one problem, a line each for more."""
    if len(problems) == 1:
        return f"settings do not fit the model at {model}: {problems[0]}"
    return f"settings do not fit the model at {model}:\n  " + "\n  ".join(problems)


def config_problems(config: ExperimentConfig, hf_config: Any) -> list[str]:
    """The checks that need only the model's config (a transformers config object)."""
    from learner.model import text_config

    context = getattr(text_config(hf_config), "max_position_embeddings", None)
    served = {"model_type": hf_config.model_type, "architectures": hf_config.architectures}
    return model_config_problems(config, context, unservable_reason_of(served),
                                 getattr(hf_config, "vision_config", None) is not None,
                                 hf_config.model_type)


def config_json_problems(config: ExperimentConfig, config_json: dict[str, Any]) -> list[str]:
    """config_problems from the parsed config.json alone: `revisor plan` runs them on an
    architecture-only directory without importing transformers (for a family
    cluster.settings.config_json does not know, the context comes from transformers)."""

    text = model_text_spec(config_json)
    if text is None:  # an unknown family: its config class knows the default context
        from transformers import AutoConfig

        from learner.model import text_config

        hf_text = text_config(AutoConfig.from_pretrained(config.model))
        context = getattr(hf_text, "max_position_embeddings", None)
    else:
        context = text.context
    return model_config_problems(config, context, unservable_reason_of(config_json),
                                 "vision_config" in config_json,
                                 str(config_json.get("model_type")))


def model_config_problems(config: ExperimentConfig, context: int | None, hf_only: str | None,
                          vision_language: bool, model_type: str) -> list[str]:
    """Settings the model's context length (max_position_embeddings), its engine (hf_only:
    why vLLM cannot serve it) or its modality (a vision task on a text model) rule out."""
    return (list(_context_problems(config, context)) + list(_engine_problems(config, hf_only))
            + list(_vision_problems(config, vision_language, model_type)))


def _vision_problems(config: ExperimentConfig, vision_language: bool,
                     model_type: str) -> Iterator[str]:
    vision_fields = [field for field, task in tasks_of(config) if getattr(task, "vision", False)]
    if vision_fields and not vision_language:
        yield (f"{', '.join(vision_fields)}: a vision-language task needs a vision-language "
               f"model; {config.model} is a text model ({model_type}): point model at "
               "a vision-language checkpoint, or train a text task")


def tasks_of(config: ExperimentConfig) -> Iterator[tuple[str, TaskConfig]]:
    """(dotted field, task settings) of every task the job plays or imitates."""
    yield "task", config.task
    if config.sft is not None:
        yield "sft.task", config.sft.task
    for name, split in config.evaluation.splits.items():
        yield f"evaluation.splits.{name}", split


def _context_problems(config: ExperimentConfig, context: int | None) -> Iterator[str]:
    if context is not None and config.engine.max_model_len > context:
        yield (f"engine.max_model_len ({config.engine.max_model_len}) exceeds the model's "
               f"context of {context} tokens (max_position_embeddings)")
    answer = config.rollout.sampling.max_tokens
    if answer >= config.engine.max_model_len:
        yield (f"rollout.sampling.max_tokens ({answer}) leaves no room for a prompt within "
               f"engine.max_model_len ({config.engine.max_model_len})")


def _engine_problems(config: ExperimentConfig, hf_only: str | None) -> Iterator[str]:
    """A weight transport may need vLLM engines (NCCL broadcasts into them); a family only the
    HF engine serves (rollout_workers/engine/factory.py) cannot take it."""
    from weight_transport.choices import engine_refusal

    if refusal := engine_refusal(config.learner.weight_sync, config.engine.kind,
                                 config.cluster.gpus_per_worker, hf_only):
        yield refusal


def _placeholder_problems(config: ExperimentConfig) -> Iterator[str]:
    """Every vision task's opening prompt, rendered by the model's own chat template, must
    hold exactly one image placeholder per image, and no more images than the engine takes."""
    from model_inputs.dialogue import DialogueTokens
    from model_inputs.vision import image_token_id, load_processor

    processor = load_processor(config.model)
    dialogue = DialogueTokens.from_tokenizer(processor.tokenizer, processor)
    placeholder = image_token_id(processor)
    for field, task in tasks_of(config):
        if not getattr(task, "vision", False):
            continue
        observation = make_episode(task, 0).observe()
        images = len(observation.images)
        found = dialogue.opening(observation).count(placeholder)
        if found != images:
            yield (f"{field}: the model's chat template writes {found} image placeholder(s) "
                   f"({processor.image_token!r}) for an observation with {images} image(s)")
        if images > config.engine.max_images_per_prompt:
            yield (f"engine.max_images_per_prompt ({config.engine.max_images_per_prompt}) is "
                   f"below the {images} image(s) of {field}'s prompts")
