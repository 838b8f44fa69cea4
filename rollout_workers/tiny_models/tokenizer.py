"""The tokenizer of Revisor's tiny models, built in the repository (nothing is downloaded).

Design, chosen so that tiny models can learn the tasks and so that answers survive decoding:
- a WordLevel model whose vocabulary is the special tokens, every ASCII character, a few
  common non-ASCII symbols, and the corpus words of `vocabulary.py` with and without a leading space;
- a regex pre-tokenizer that cuts text into known words (optionally with the space before
  them) or else single characters. Digits and operators are therefore always one token each
  (arithmetic stays learnable), and an unknown word is spelled out character by character,
  so ASCII text never becomes the unknown token;
- accents are stripped (NFKD) so 'Café' reads as 'Cafe'; a fused decoder glues tokens back
  together, so decode(encode(text)) == text for ASCII text.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from rollout_workers.tiny_models.vocabulary import corpus_words

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, *ROLE_TOKENS, IMAGE_TOKEN)
CHARACTERS = "".join(chr(code) for code in range(128))
EXTRA_CHARACTERS = "×÷−–—‘’“”°"
"""Non-ASCII characters models and feedback commonly write; anything else outside ASCII is UNK."""

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- '<|' + message['role'] + '|>\\n' -}}"
    "{%- if message['content'] is string -%}{%- set parts = [{'type': 'text', 'text': message['content']}] -%}"
    "{%- else -%}{%- set parts = message['content'] -%}{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- generation -%}"
    "{%- for part in parts -%}{{- part['text'] -}}{%- endfor -%}{{- eos_token -}}"
    "{%- endgeneration -%}{%- else -%}"
    "{%- for part in parts -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>\\n' -}}{%- else -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{{- eos_token -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)
"""Every turn is `<|role|>\\n` + content + `</s>`, with nothing between turns, so the ids of a
dialogue are exactly the concatenation of the ids of its turns: a rollout worker can append
sampled answer ids (which end with `</s>`, where the engines stop) and the next turn's ids
without re-tokenising anything. Images are one `<image>` token each (the engines expand it)."""


def build_tokenizer(words: list[str] | None = None) -> PreTrainedTokenizerFast:
    """The tiny models' tokenizer; the same words always give the same ids."""
    words = corpus_words() if words is None else words
    vocab = _vocabulary(words)
    tokenizer = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents()])
    tokenizer.pre_tokenizer = pre_tokenizers.Split(_word_or_character(words), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        additional_special_tokens=[*ROLE_TOKENS, IMAGE_TOKEN],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
        padding_side="left",
    )


def _vocabulary(words: list[str]) -> dict[str, int]:
    pieces = [*SPECIAL_TOKENS, *CHARACTERS, *EXTRA_CHARACTERS]
    pieces += [form for word in words for form in (word, " " + word)]
    return {piece: index for index, piece in enumerate(dict.fromkeys(pieces))}


def _word_or_character(words: list[str]) -> Regex:
    """A known word (longest first), optionally after one space, as a whole word; else one
    character. Every character is matched, so nothing falls between the pieces."""
    alternatives = "|".join(sorted(words, key=lambda word: (-len(word), word)))
    return Regex(rf" ?\b(?:{alternatives})\b|[\s\S]")
