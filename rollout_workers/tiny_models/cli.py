"""`revisor tiny-model`: build a tiny model and save it where the config will point."""

from __future__ import annotations

import argparse
import json

from rollout_workers.tiny_models.build import build_model, count_parameters, save_model
from rollout_workers.tiny_models.presets import SIZES


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="revisor tiny-model",
        description="Build a tiny, randomly initialised model with Revisor's tokenizer and save "
        "it as a checkpoint directory (loadable by path by transformers and vLLM).",
    )
    p.add_argument("--kind", choices=("lm", "vlm", "mllama", "qwen2vl"), default="lm",
                   help="lm: Llama causal LM; vlm: LLaVA (CLIP vision tower + Llama); "
                   "mllama: Llama-3.2-Vision architecture (tiled vision encoder, cross-attention); "
                   "qwen2vl: Qwen2-VL (M-RoPE; served natively by vLLM on GPU)")
    p.add_argument("--size", choices=SIZES, default="0.5m", help="parameter budget preset")
    p.add_argument("--out", required=True, help="directory to write the checkpoint to")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    return p


def tiny_model_main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    model, tokenizer_or_processor = build_model(args.kind, args.size, args.seed)
    out = save_model(model, tokenizer_or_processor, args.out)
    print(json.dumps({"kind": args.kind, "size": args.size,
                      "parameters": count_parameters(model), "path": str(out)}))
    return 0


cli = main = tiny_model_main
