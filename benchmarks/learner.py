"""Learner throughput: a PPO update vs raw forward+backward of the same model on the same batch.

One run measures both, interleaved round by round, so that a noisy shared machine still gives
a stable ratio. The batch is sequential-revision shaped (episodes of several turns, each
turn's prompt extending the previous prompt and answer) with random token ids.
- PPO: one full LearnerRank update (DeepSpeed, ZeRO as configured): scoring pass, turn-level
  GAE, advantage normalisation, `epochs` x `minibatches` optimizer steps, stats.
  ppo tokens/s = epochs x batch tokens / wall time of the update.
- raw: plain torch, the same model with a standard causal-LM loss over the same micro-batches
  (same rows, same padding), backward and an AdamW step per minibatch, `epochs` times.
  raw tokens/s = epochs x batch tokens / wall time.
The ratio ppo/raw is the share of the model's training speed the PPO machinery keeps.

Usage: .venv/bin/python benchmarks/learner.py [--size 5m] [--rounds 3] [--out runs/benchmarks/learner.json]
"""
# ruff: noqa: E402  (the checkout goes on sys.path, and one thread is set, before any import)

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import json
import statistics
import tempfile
import time

import pyarrow as pa
import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoModelForCausalLM

from learner.batch import Turns, collate_turns, split_micro_batches, turns_from_record_batches
from learner.config import LearnerConfig
from learner.engine import DeepSpeedConfig, prepare_environment
from learner.model import ModelConfig
from learner.optim import OptimConfig
from learner.ppo import PPOConfig
from learner.rank import LearnerRank
from rollout_workers.tiny_models.build import save_tiny_model
from rollout_workers.trajectory import EpisodeRecord, TurnRecord, to_record_batch


class LearnerBenchmark(BaseModel):
    """The batch and the update being measured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: str = "5m"
    """Tiny model preset (rollout_workers.tiny_models)."""
    rounds: int = Field(3, ge=1)
    """PPO and raw take turns this many times (after one warm-up each); medians are reported."""
    episodes: int = Field(16, ge=1)
    turns: int = Field(3, ge=1)
    """Verification steps per episode."""
    prompt_tokens: int = Field(96, ge=1)
    """Tokens of the first prompt; later turns add the answer and a feedback of 16 tokens."""
    response_tokens: int = Field(48, ge=1)
    epochs: int = Field(4, ge=1)
    minibatches: int = Field(2, ge=1)
    micro_batch_size: int = Field(16, ge=1)
    zero_stage: int = Field(2, ge=0, le=3)


def synthetic_batch(b: LearnerBenchmark, vocab: int, seed: int = 0) -> pa.RecordBatch:
    g = torch.Generator().manual_seed(seed)
    ids = lambda n: torch.randint(10, vocab, (n,), generator=g).tolist()  # noqa: E731
    episodes = []
    for e in range(b.episodes):
        record, prompt = EpisodeRecord(f"ep-{e}", "gp-l", "id", e), ids(b.prompt_tokens)
        for t in range(b.turns):
            response = ids(b.response_tokens)
            last = t + 1 == b.turns
            record.turns.append(TurnRecord(
                prompt_ids=prompt, response_ids=response,
                response_logprobs=[-1.0] * len(response), policy_version=0, truncated=False,
                reward=5.0 if last and e % 4 == 0 else -1.0, done=last,
                success=last and e % 4 == 0, outcome="x", feedback="", parsed_answer="",
                recognition_ok=None, restart=False))
            prompt = prompt + response + ids(16)
        episodes.append(record)
    return to_record_batch(episodes, "bench")


def ppo_seconds(learner: LearnerRank, batch: pa.RecordBatch) -> float:
    start = time.perf_counter()
    learner.update([batch])
    return time.perf_counter() - start


def raw_seconds(model: torch.nn.Module, optimizer: torch.optim.Optimizer, turns: Turns,
                b: LearnerBenchmark) -> float:
    """Standard LM training on the same micro-batches the PPO update builds."""
    rows = list(range(len(turns)))
    lengths = [turns.length(i) for i in rows]
    start = time.perf_counter()
    for _ in range(b.epochs):
        for k in range(b.minibatches):
            for chunk in split_micro_batches(rows[k :: b.minibatches], lengths, b.micro_batch_size):
                micro = collate_turns(turns, chunk, pad_id=0)
                labels = micro.input_ids.masked_fill(micro.attention_mask == 0, -100)
                loss = model(input_ids=micro.input_ids, attention_mask=micro.attention_mask,
                             labels=labels).loss
                loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return time.perf_counter() - start


def run(b: LearnerBenchmark) -> dict[str, float | int | str]:
    prepare_environment()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as scratch:
        return measure(b, save_tiny_model("lm", b.size, Path(scratch) / "model"))


def measure(b: LearnerBenchmark, path: Path) -> dict[str, float | int | str]:
    model = AutoModelForCausalLM.from_pretrained(path)
    batch = synthetic_batch(b, model.config.vocab_size)
    turns = turns_from_record_batches([batch])
    tokens = sum(turns.length(i) for i in range(len(turns)))
    learner = LearnerRank(LearnerConfig(
        model=ModelConfig(path=str(path)), optim=OptimConfig(lr=1e-5),
        engine=DeepSpeedConfig(zero_stage=b.zero_stage, micro_batch_size=b.micro_batch_size),
        ppo=PPOConfig(ppo_epochs=b.epochs, num_minibatches=b.minibatches, temperature=1.0)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ppo_seconds(learner, batch), raw_seconds(model, optimizer, turns, b)  # warm-up
    ppo, raw = [], []
    for _ in range(b.rounds):
        ppo.append(ppo_seconds(learner, batch))
        raw.append(raw_seconds(model, optimizer, turns, b))
    ppo_rate = b.epochs * tokens / statistics.median(ppo)
    raw_rate = b.epochs * tokens / statistics.median(raw)
    return {"model": b.size, "parameters": sum(p.numel() for p in model.parameters()),
            "batch_tokens": tokens, "turns": len(turns), "epochs": b.epochs,
            "minibatches": b.minibatches, "zero_stage": b.zero_stage,
            "ppo_seconds": ppo, "raw_seconds": raw,
            "ppo_tokens_per_s": ppo_rate, "raw_tokens_per_s": raw_rate,
            "ratio": ppo_rate / raw_rate}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, field in LearnerBenchmark.model_fields.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(field.default),
                            default=field.default, help=field.description)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/learner.json"))
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    result = run(LearnerBenchmark(**args))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"PPO update: {result['ppo_tokens_per_s']:.0f} tokens/s; raw forward+backward: "
          f"{result['raw_tokens_per_s']:.0f} tokens/s; ratio {result['ratio']:.2f} -> {out}")


if __name__ == "__main__":
    main()
