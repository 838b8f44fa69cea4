"""Evaluation during SFT: held-out loss, exact match with the expert, and task success.

Exact match says whether the model imitates; success (the environment's own verifier on the
greedy answer) says whether it solves, which is what the RL init needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from contracts.multimodal import batch_vision_inputs, token_type_inputs
from envs.registry import make_episode
from learner.batch import collate_turns


class SFTTrainer(Protocol):
    """What an evaluation reads of the SFT trainer (learner.sft.SFTTrainer), named here so
    that evaluation depends on the trainer's surface, not on its module."""

    config: Any
    engine: Any
    backbone: Any
    tokenizer: Any
    pad_id: int
    eval_demos: list[Any]
    eval_set: Any


EvalHook = Callable[[SFTTrainer], dict[str, Any]]
"""Called with the trainer every `eval_every` steps; returns named results to record."""

_GENERATION_BATCH = 32


def evaluate_generation(trainer: SFTTrainer) -> dict[str, Any]:
    """Teacher-forced loss, greedy exact match and success on the held-out episodes."""
    demos = trainer.eval_demos
    if not demos:
        return {}
    turns = trainer.eval_set
    answers = greedy_answers(trainer, turns)
    texts = [trainer.tokenizer.decode(ids, skip_special_tokens=True) for ids in answers]
    exact = sum(text.strip() == demo.answer.strip() for text, demo in zip(texts, demos, strict=True))
    solved = sum(_verdict_of(trainer.config.task, demo, text).success
                 for text, demo in zip(texts, demos, strict=True))
    return {"eval_loss": eval_loss(trainer, turns), "exact_match": exact / len(demos),
            "success_rate": solved / len(demos), "samples": texts[:3]}


def _verdict_of(task: Any, demo: Any, text: str) -> Any:
    """The verifier's verdict on `text` at the demonstration's state (its earlier answers
    replayed first): success is that one step's (a solved hand, a right V-IRL action)."""
    episode = make_episode(task, demo.seed)
    for answer in demo.earlier:
        episode.submit(answer)
    return episode.submit(text).verdict


def eval_loss(trainer: SFTTrainer, turns: Any) -> float:
    """Mean negative log-likelihood per answer token."""
    total, count = 0.0, 0
    rows = list(range(len(turns)))
    for start in range(0, len(rows), trainer.engine.config.micro_batch_size):
        micro = collate_turns(turns, rows[start : start + trainer.engine.config.micro_batch_size],
                              trainer.pad_id)
        inputs = {k: trainer.engine.to_device(v) for k, v in micro.model_inputs().items()}
        inputs.pop("value_index")
        logprobs, _, _ = trainer.engine(**inputs, temperature=1.0)
        total -= float(logprobs.sum())
        count += logprobs.numel()
    return total / max(count, 1)


def greedy_answers(trainer: SFTTrainer, turns: Any) -> list[list[int]]:
    """Greedy continuations of every prompt, cut after the end-of-sequence token."""
    backbone = trainer.backbone
    eos = backbone.generation_config.eos_token_id
    out: list[list[int]] = []
    for start in range(0, len(turns), _GENERATION_BATCH):
        rows = list(range(start, min(start + _GENERATION_BATCH, len(turns))))
        prompts = [turns.prompt_ids[i] for i in rows]
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[trainer.pad_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        extra = {}
        if turns.vision is not None:
            extra = batch_vision_inputs([turns.vision[i] for i in rows],
                                        [len(p) for p in prompts], width, left=True)
            extra |= token_type_inputs(backbone, ids, extra)
        generated = backbone.generate(
            input_ids=trainer.engine.to_device(ids), attention_mask=trainer.engine.to_device(mask),
            **{k: trainer.engine.to_device(v) for k, v in extra.items()},
            max_new_tokens=trainer.config.max_answer_tokens, do_sample=False,
            pad_token_id=trainer.pad_id, eos_token_id=eos)
        for row in generated[:, width:].tolist():
            out.append(_until_eos(row, eos))
    return out


def _until_eos(tokens: list[int], eos: int | list[int] | None) -> list[int]:
    stops = {eos} if isinstance(eos, int) else set(eos or [])
    end = next((i + 1 for i, t in enumerate(tokens) if t in stops), len(tokens))
    return tokens[:end]
