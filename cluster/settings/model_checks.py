"""Settings checked against the checkpoint they will run, before any actor starts.

Some mistakes only show when settings meet a model: a vision-language task given a text
model, a context window longer than the model's, a chat template that does not place one
image placeholder per image. Each would otherwise fail minutes later inside an actor; here
it fails at once, naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cluster.settings.config_json import model_text_spec
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import SettingsError
from envs.registry import TaskConfig, make_episode
from rollout_workers.engine.factory import unservable_reason_of, vllm_unservable_reason


def check_against_model(config: ExperimentConfig) -> None:
    """Raise SettingsError listing every setting the checkpoint at `config.model` cannot run."""
    from transformers import AutoConfig

    try:
        hf_config = AutoConfig.from_pretrained(config.model)
    except (OSError, ValueError) as error:
        raise SettingsError(f"model: cannot load a model config from {config.model!r} ({error}); "
                            "give a checkpoint directory, or tiny_model settings to build one "
                            "there") from None
    problems = config_problems(config, hf_config)
    vision_fields = [field for field, task in tasks_of(config) if getattr(task, "vision", False)]
    if vision_fields and getattr(hf_config, "vision_config", None) is None:
        problems.append(f"{', '.join(vision_fields)}: a vision-language task needs a vision-"
                        f"language model; {config.model} is a text model "
                        f"({hf_config.model_type})")
    elif vision_fields:
        problems += _placeholder_problems(config)
    if problems:
        raise SettingsError(f"settings do not fit the model at {config.model}:\n  "
                            + "\n  ".join(problems))


def config_problems(config: ExperimentConfig, hf_config: Any) -> list[str]:
    """The checks that need only the model's config (a transformers config object)."""
    from learner.model import text_config

    context = getattr(text_config(hf_config), "max_position_embeddings", None)
    return model_config_problems(config, context, vllm_unservable_reason(config.model))


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
    return model_config_problems(config, context, unservable_reason_of(config_json))


def model_config_problems(config: ExperimentConfig, context: int | None,
                          hf_only: str | None) -> list[str]:
    """Settings the model's context length (max_position_embeddings) or its engine (hf_only:
    why vLLM cannot serve it) rule out."""
    return list(_context_problems(config, context)) + list(_engine_problems(config, hf_only))


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
    from contracts.dialogue import DialogueTokens
    from contracts.multimodal import image_token_id, load_processor

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
