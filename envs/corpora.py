"""Every task's pretraining corpus behind one settings type, chosen by its `task` field.

`revisor pretrain` and the SFT trainer read a corpus only through this module: its settings
(`Corpus`), its documents (each a prompt and an answer) and its version, which names the kind
so that a base pretrained on one task's corpus is never taken for another's.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Tag

from envs.general_points import corpus as gp_corpus
from envs.general_points.corpus import CorpusConfig
from envs.virl import corpus as virl_corpus
from envs.virl.corpus import VIRLCorpusConfig


def _corpus_task(value: Any) -> str:
    """The corpus kind of raw settings or a config; 'gp' when unset, so that settings written
    before V-IRL had a corpus (`corpus: {documents: 40000}`) keep their meaning."""
    if isinstance(value, dict):
        return value.get("task", "gp")
    return getattr(value, "task", "gp")


Corpus = Annotated[Annotated[CorpusConfig, Tag("gp")] | Annotated[VIRLCorpusConfig, Tag("virl")],
                   Discriminator(_corpus_task)]
"""A pretraining corpus's settings: GeneralPoints' ('gp', the default) or V-IRL's ('virl')."""
CorpusDocument = gp_corpus.Document | virl_corpus.Document
"""One document of either corpus: `prompt` and `answer` are what the trainer reads."""


def corpus_documents(config: CorpusConfig | VIRLCorpusConfig) -> list[CorpusDocument]:
    """Every document of the corpus `config` describes, in index order."""
    if isinstance(config, VIRLCorpusConfig):
        return list(virl_corpus.documents(config))
    return list(gp_corpus.documents(config))


def corpus_version(config: CorpusConfig | VIRLCorpusConfig) -> int | str:
    """The version of the documents `config` produces. GeneralPoints' is its bare number, as
    before V-IRL had a corpus (cached GeneralPoints bases keep their keys); V-IRL's is
    prefixed by its kind."""
    if isinstance(config, VIRLCorpusConfig):
        return f"virl-{virl_corpus.CORPUS_VERSION}"
    return gp_corpus.CORPUS_VERSION
