"""Every task's pretraining corpus behind one settings type, chosen by its `task` field.

`revisor pretrain` and the SFT trainer read a corpus only through this module: its settings
(`Corpus`), its documents (each a prompt and an answer) and its version, which names the kind
so that a base pretrained on one task's corpus is never taken for another's. GP-VL's vision
corpus (`kind: vision`, envs/general_points/vision_corpus.py) is a 'gp' corpus whose
documents also name a picture each (`image_refs`); V-IRL-VL's (`task: virl, kind: vision`,
envs/virl/vision_corpus.py) is a 'virl' corpus whose documents name a view grid each.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Tag

from envs.general_points import corpus as gp_corpus
from envs.general_points import vision_corpus
from envs.general_points.corpus import CorpusConfig
from envs.general_points.vision_corpus import VisionCorpusConfig
from envs.virl import corpus as virl_corpus
from envs.virl import vision_corpus as virl_vision_corpus
from envs.virl.corpus import VIRLCorpusConfig
from envs.virl.vision_corpus import VIRLVisionCorpusConfig


def _corpus_task(value: Any) -> str:
    """The corpus kind of raw settings or a config; 'gp' when unset, so that settings written
    before V-IRL had a corpus (`corpus: {documents: 40000}`) keep their meaning; 'gp-vision'
    and 'virl-vision' for the picture corpora (`kind: vision`) of GP-VL and V-IRL-VL."""
    task = _field(value, "task", "gp")
    if _field(value, "kind", None) == "vision":
        return f"{task}-vision"
    return task


def _field(value: Any, key: str, default: Any) -> Any:
    return value.get(key, default) if isinstance(value, dict) else getattr(value, key, default)


Corpus = Annotated[Annotated[CorpusConfig, Tag("gp")] | Annotated[VIRLCorpusConfig, Tag("virl")]
                   | Annotated[VisionCorpusConfig, Tag("gp-vision")]
                   | Annotated[VIRLVisionCorpusConfig, Tag("virl-vision")],
                   Discriminator(_corpus_task)]
"""A pretraining corpus's settings: GeneralPoints' ('gp', the default), V-IRL's ('virl') or
the pictures of GP-VL or V-IRL-VL (`kind: vision`)."""
AnyCorpusConfig = CorpusConfig | VIRLCorpusConfig | VisionCorpusConfig | VIRLVisionCorpusConfig
CorpusDocument = (gp_corpus.Document | virl_corpus.Document | vision_corpus.VisionDocument
                  | virl_vision_corpus.VIRLVisionDocument)
"""One document of any corpus: `prompt` and `answer` are what the trainer reads, and
`image_refs` where a document shows pictures."""


def corpus_documents(config: AnyCorpusConfig) -> list[CorpusDocument]:
    """Every document of the corpus `config` describes, in index order."""
    if isinstance(config, VIRLCorpusConfig):
        return list(virl_corpus.documents(config))
    if isinstance(config, VisionCorpusConfig):
        return list(vision_corpus.documents(config))
    if isinstance(config, VIRLVisionCorpusConfig):
        return list(virl_vision_corpus.documents(config))
    return list(gp_corpus.documents(config))


def held_out_documents(config: AnyCorpusConfig, count: int) -> list[CorpusDocument]:
    """`count` documents of a text corpus past its last index, which training never reads
    (the documents are fixed by their index, so these are drawn as the corpus's own are);
    none for the picture corpora."""
    if isinstance(config, VIRLCorpusConfig):
        return [virl_corpus.document(config, config.documents + i) for i in range(count)]
    if isinstance(config, CorpusConfig):
        return [gp_corpus.document(config, config.documents + i) for i in range(count)]
    return []


def corpus_version(config: AnyCorpusConfig) -> int | str:
    """The version of the documents `config` produces. GeneralPoints' is its bare number, as
    before V-IRL had a corpus (cached GeneralPoints bases keep their keys); the others' are
    prefixed by their kind."""
    if isinstance(config, VIRLCorpusConfig):
        return f"virl-{virl_corpus.CORPUS_VERSION}"
    if isinstance(config, VisionCorpusConfig):
        return f"gp-vision-{vision_corpus.VISION_CORPUS_VERSION}"
    if isinstance(config, VIRLVisionCorpusConfig):
        return f"virl-vision-{virl_vision_corpus.VISION_CORPUS_VERSION}"
    return gp_corpus.CORPUS_VERSION
