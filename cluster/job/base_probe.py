"""What a freshly pretrained base can do: its greedy answers to corpus documents it never saw.

Pretraining loss says how well a base imitates its corpus on average, not whether the one
skill a study needs is there (a base can copy the commonest answer of a kind of document and
reach a low loss). So `revisor pretrain` ends by asking the base documents past the corpus's
last index, greedily, and scores them per kind of document and rule beside the share of the
commonest answer (what copying it would score). V-IRL documents are scored on the action or
turn they name, as the verifier reads it; GeneralPoints' on the whole answer (so a correct
formula other than the document's counts as wrong: a lower bound on the skill).
Picture corpora are not probed here (their bases are measured by their jobs' recognition).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict

from contracts.episode import Observation
from envs.corpora import AnyCorpusConfig, CorpusDocument, held_out_documents
from envs.virl.corpus import Document as VIRLDocument
from model_inputs.dialogue import DialogueTokens
from verifier.virl import normalise_action, parse_answer

_BATCH = 16
_MAX_NEW_TOKENS = 96


class ProbeRow(BaseModel):
    """One kind of held-out document: how many the base answered right, and how many the
    commonest answer of that kind would."""

    model_config = ConfigDict(frozen=True)

    group: str
    right: int
    total: int
    majority: int


def probe_base(model_path: Path, corpus: AnyCorpusConfig, count: int) -> list[ProbeRow]:
    """The base at `model_path` on `count` held-out documents of `corpus`, per group."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    docs = held_out_documents(corpus, count)
    if not docs:
        return []
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    dialogue = DialogueTokens.from_tokenizer(tokenizer, None)
    texts: list[str] = []
    for start in range(0, len(docs), _BATCH):
        prompts = [dialogue.opening(Observation(text=doc.prompt)) for doc in docs[start:start + _BATCH]]
        texts += _greedy(model, tokenizer, prompts)
    return score_answers(docs, texts)


def _greedy(model, tokenizer, prompts: list[list[int]]) -> list[str]:
    """Greedy answers to a batch of prompts (left-padded, so every answer starts together)."""
    width, pad = max(map(len, prompts)), tokenizer.pad_token_id or 0
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                             max_new_tokens=_MAX_NEW_TOKENS, pad_token_id=pad,
                             eos_token_id=model.generation_config.eos_token_id)
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in out[:, width:]]


def score_answers(docs: list[CorpusDocument], texts: list[str]) -> list[ProbeRow]:
    """Answers to held-out documents, scored per group against each document's own."""
    right, wanted = Counter(), {}
    for doc, text in zip(docs, texts, strict=True):
        group, want = _group(doc), _scored(doc, doc.answer)
        wanted.setdefault(group, []).append(want)
        right[group] += _scored(doc, text) == want
    return [ProbeRow(group=group, right=right[group], total=len(wants),
                     majority=Counter(wants).most_common(1)[0][1])
            for group, wants in sorted(wanted.items())]


def _group(doc: CorpusDocument) -> str:
    """'kind', V-IRL's 'kind/rule', and its task-prompt documents split into turning and
    other positions (turns are where the two rules differ)."""
    if not isinstance(doc, VIRLDocument):
        return doc.kind
    if doc.kind == "step":
        return f"step/{doc.rule}/{'turn' if doc.turn is not None else 'other'}"
    return f"{doc.kind}/{doc.rule}"


def _scored(doc: CorpusDocument, text: str) -> str | None:
    """What of an answer is compared: V-IRL's action (or a difference's final turn word),
    as the verifier reads it; the whole answer elsewhere."""
    if not isinstance(doc, VIRLDocument):
        return text.strip()
    if doc.kind == "difference":
        return text.rsplit(": ", 1)[-1].strip()
    action = parse_answer(text).action
    return normalise_action(action) if action else None


def probe_table(rows: list[ProbeRow]) -> str:
    """The probe as lines: group, the base's accuracy, and the commonest answer's share."""
    lines = [f"{'held-out documents':<22} {'base':>12} {'commonest answer':>18}"]
    for row in rows:
        lines.append(f"{row.group:<22} {row.right:>4}/{row.total:<3} {_percent(row.right, row.total)}"
                     f" {row.majority:>9}/{row.total:<3} {_percent(row.majority, row.total)}")
    return "\n".join(lines)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:3.0f}%"
