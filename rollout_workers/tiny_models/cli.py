"""`revisor tiny-model`: build a tiny model and save it where the config will point."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

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
    p.add_argument("--out", required=True, type=Path,
                   help="directory to write the checkpoint to (new or empty)")
    p.add_argument("--force", action="store_true",
                   help="clear a non-empty --out directory first (its files are deleted)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    return p


def out_problem(out: Path, force: bool) -> str | None:
    """Why the checkpoint cannot be written at `out`, or None. A file is never a checkpoint
    directory; a non-empty directory would keep another model's files beside the new ones
    (a stale shard or processor the loaders then pick up), so it needs --force."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file, not a directory: give a new or empty directory"
    if out.is_dir() and any(out.iterdir()) and not force:
        return (f"--out {out} is not empty: pass --force to replace what it holds, or give "
                "a new or empty directory")
    return None


def tiny_model_main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if problem := out_problem(args.out, args.force):
        print(f"revisor tiny-model: {problem}", file=sys.stderr)
        return 2
    # Imported after the checks: building loads torch and transformers (seconds).
    from rollout_workers.tiny_models.build import build_model, count_parameters, save_model

    model, tokenizer_or_processor = build_model(args.kind, args.size, args.seed)
    if args.force and args.out.is_dir():
        shutil.rmtree(args.out)
    out = save_model(model, tokenizer_or_processor, args.out)
    print(json.dumps({"kind": args.kind, "size": args.size,
                      "parameters": count_parameters(model), "path": str(out)}))
    return 0


cli = main = tiny_model_main
