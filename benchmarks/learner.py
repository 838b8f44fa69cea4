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
`ppo_over_raw` (PPO tokens/s over raw tokens/s) is the share of the model's training speed the
PPO machinery keeps.

Model FLOPs utilisation (MFU) divides the model FLOPs per second by the device's dense bf16
peak. Model FLOPs of a forward over a sequence of T tokens: 2 per matmul weight and token plus
causal attention's scores and mixing, 2 x layers x hidden x T^2; a training pass is 3 forwards.
A PPO update is one scoring forward plus `epochs` training passes; the raw side is `epochs`
training passes. Recomputation and padding are not counted (they are the cost, not the work).

On a GPU, `--shape llama-3.2-1b` trains the real Llama-3.2-1B architecture (1.24B parameters,
random weights) in bf16 on one GPU, with a study-sized batch; the prepared command (needs
torch, transformers, DeepSpeed, and this checkout's pydantic and pyarrow; about 3 minutes on
an H100):

    python benchmarks/learner.py --shape llama-3.2-1b --episodes 32 --prompt-tokens 512 \
        --response-tokens 256 --micro-batch-size 8 --epochs 2 --rounds 2

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
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from contracts.trajectory import EpisodeRecord, TurnRecord, to_record_batch
from learner.batch import Turns, collate_turns, split_micro_batches, turns_from_record_batches
from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, OptimConfig, PPOConfig
from learner.engine import prepare_environment, resolve_dtype, use_gpu
from learner.rank import LearnerRank
from rollout_workers.tiny_models.build import save_tiny_model

REAL_SHAPES: dict[str, dict[str, object]] = {
    "llama-3.2-1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                         head_dim=64, max_position_embeddings=131072, rope_theta=500000.0,
                         tie_word_embeddings=True),
}
"""Published architectures, built with random weights (no hub is needed)."""

BF16_PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4), ("H200", 989.4),
                    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0))
"""Dense bf16 peaks by GPU name (the first name that matches counts: PCIe before SXM)."""


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
    shape: str = ""
    """A real-size architecture of REAL_SHAPES (random weights) instead of the tiny `size`."""
    peak_tflops: float = Field(0.0, ge=0.0)
    """The device's dense bf16 peak for MFU; 0 takes it from the GPU's name (none on CPU)."""


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
    _synchronize()
    return time.perf_counter() - start


def raw_seconds(model: torch.nn.Module, optimizer: torch.optim.Optimizer, turns: Turns,
                b: LearnerBenchmark) -> float:
    """Standard LM training on the same micro-batches the PPO update builds."""
    rows = list(range(len(turns)))
    lengths = [turns.length(i) for i in rows]
    device = next(model.parameters()).device
    start = time.perf_counter()
    for _ in range(b.epochs):
        for k in range(b.minibatches):
            for chunk in split_micro_batches(rows[k :: b.minibatches], lengths, b.micro_batch_size):
                micro = collate_turns(turns, chunk, pad_id=0)
                ids, mask = micro.input_ids.to(device), micro.attention_mask.to(device)
                loss = model(input_ids=ids, attention_mask=mask,
                             labels=ids.masked_fill(mask == 0, -100)).loss
                loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    _synchronize()
    return time.perf_counter() - start


def forward_flops(model: torch.nn.Module, lengths: list[int]) -> float:
    """Model FLOPs of one forward over sequences of `lengths` (see the module docstring)."""
    matmul_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    config = model.config
    attention = 2 * config.num_hidden_layers * config.hidden_size
    return sum(2 * matmul_weights * n + attention * n * n for n in lengths)


def peak_flops(b: LearnerBenchmark) -> float | None:
    """FLOPs per second of the device's dense bf16 peak, if known."""
    if b.peak_tflops:
        return b.peak_tflops * 1e12
    if not use_gpu():
        return None
    name = torch.cuda.get_device_name()
    return next((tflops * 1e12 for key, tflops in BF16_PEAK_TFLOPS if key in name), None)


def model_dir(b: LearnerBenchmark, scratch: Path) -> Path:
    """The tiny preset, or a real-size architecture with random weights saved in bf16."""
    if not b.shape:
        return save_tiny_model("lm", b.size, scratch / "model")
    if b.shape not in REAL_SHAPES:
        raise ValueError(f"unknown shape {b.shape!r}; choose one of {', '.join(REAL_SHAPES)}")
    torch.manual_seed(0)
    with torch.device("cuda" if use_gpu() else "cpu"):
        model = LlamaForCausalLM(LlamaConfig(**REAL_SHAPES[b.shape], dtype="bfloat16"))
    model.to(torch.bfloat16).save_pretrained(scratch / "model")
    del model
    return scratch / "model"


def run(b: LearnerBenchmark) -> dict[str, float | int | str | None]:
    prepare_environment()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as scratch:
        return measure(b, model_dir(b, Path(scratch)))


def measure(b: LearnerBenchmark, path: Path) -> dict[str, float | int | str | None]:
    engine = DeepSpeedConfig(zero_stage=b.zero_stage, micro_batch_size=b.micro_batch_size)
    dtype, device = resolve_dtype(engine), "cuda" if use_gpu() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    batch = synthetic_batch(b, model.config.vocab_size)
    turns = turns_from_record_batches([batch])
    lengths = [turns.length(i) for i in range(len(turns))]
    learner = LearnerRank(LearnerConfig(
        model=ModelConfig(path=str(path)), optim=OptimConfig(lr=1e-5), engine=engine,
        ppo=PPOConfig(ppo_epochs=b.epochs, num_minibatches=b.minibatches, temperature=1.0)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ppo_seconds(learner, batch), raw_seconds(model, optimizer, turns, b)  # warm-up
    ppo, raw = [], []
    for _ in range(b.rounds):
        ppo.append(ppo_seconds(learner, batch))
        raw.append(raw_seconds(model, optimizer, turns, b))
    return report(b, model, lengths, ppo, raw) | {"dtype": str(dtype).removeprefix("torch."),
                                                  "device": _device_name()}


def report(b: LearnerBenchmark, model: torch.nn.Module, lengths: list[int], ppo: list[float],
           raw: list[float]) -> dict[str, float | int | str | None]:
    tokens, flops, peak = sum(lengths), forward_flops(model, lengths), peak_flops(b)
    ppo_s, raw_s = statistics.median(ppo), statistics.median(raw)
    ppo_flops_per_s = (1 + 3 * b.epochs) * flops / ppo_s
    raw_flops_per_s = 3 * b.epochs * flops / raw_s
    ppo_rate, raw_rate = b.epochs * tokens / ppo_s, b.epochs * tokens / raw_s
    return {"model": b.shape or b.size, "parameters": sum(p.numel() for p in model.parameters()),
            "batch_tokens": tokens, "turns": len(lengths), "epochs": b.epochs,
            "minibatches": b.minibatches, "zero_stage": b.zero_stage,
            "ppo_seconds": ppo, "raw_seconds": raw,
            "ppo_tokens_per_s": ppo_rate, "raw_tokens_per_s": raw_rate,
            "ppo_over_raw": ppo_rate / raw_rate,
            "ppo_model_tflops_per_s": ppo_flops_per_s / 1e12,
            "raw_model_tflops_per_s": raw_flops_per_s / 1e12,
            "peak_tflops": peak / 1e12 if peak else None,
            "ppo_mfu": ppo_flops_per_s / peak if peak else None,
            "raw_mfu": raw_flops_per_s / peak if peak else None}


def _synchronize() -> None:
    if use_gpu():
        torch.cuda.synchronize()


def _device_name() -> str:
    return torch.cuda.get_device_name() if use_gpu() else "cpu"


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
    mfu = (f"; MFU {result['ppo_mfu']:.1%} (PPO), {result['raw_mfu']:.1%} (raw)"
           if result["ppo_mfu"] is not None else "")
    print(f"PPO update: {result['ppo_tokens_per_s']:.0f} tokens/s; raw forward+backward: "
          f"{result['raw_tokens_per_s']:.0f} tokens/s; ppo_over_raw "
          f"{result['ppo_over_raw']:.2f}{mfu} -> {out}")


if __name__ == "__main__":
    main()
