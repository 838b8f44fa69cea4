"""The held-out probe `revisor pretrain` ends with: which documents it asks, how it scores
them, and that it runs on a real checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

from cluster.job.base_probe import probe_base, probe_table, score_answers
from envs.corpora import corpus_documents, held_out_documents
from envs.general_points.corpus import CorpusConfig
from envs.virl.corpus import VIRLCorpusConfig
from envs.virl.vision_corpus import VIRLVisionCorpusConfig
from tests.fixtures_models import save_model
from verifier.virl import parse_answer

VIRL = VIRLCorpusConfig(documents=50, turn_share=0.5)


def test_held_out_documents_are_ones_training_never_reads() -> None:
    for config in (VIRL, CorpusConfig(documents=50)):
        trained = {doc.prompt for doc in corpus_documents(config)}
        held_out = held_out_documents(config, 40)
        assert len(held_out) == 40 and not trained & {doc.prompt for doc in held_out}
    assert held_out_documents(VIRLVisionCorpusConfig(documents=10), 5) == []


def test_virl_answers_are_scored_on_the_action_per_kind_rule_and_turn() -> None:
    docs = held_out_documents(VIRL, 120)
    expert = score_answers(docs, [doc.answer for doc in docs])
    assert all(row.right == row.total for row in expert)
    assert {row.group for row in expert} == {
        "difference/ood", "facing/id", "facing/ood", "step/id/turn", "step/id/other",
        "step/ood/turn", "step/ood/other"}
    assert sum(row.total for row in expert) == 120
    # the action is what counts: a step answer that names the expert's action in a bare
    # object is right, a turn the other way is wrong
    turn = next(doc for doc in docs if doc.kind == "step" and doc.turn is not None)
    bare = f'{{"action": "{parse_answer(turn.answer).action}"}}'
    assert score_answers([turn], [bare])[0].right == 1
    other = "left" if "turn_direction(left)" not in turn.answer else "right"
    wrong = re.sub(r"turn_direction\([a-z ]+\)", f"turn_direction({other})", turn.answer)
    assert score_answers([turn], [wrong])[0].right == 0
    # the commonest answer's share is the floor a copying base reaches
    assert all(0 < row.majority <= row.total for row in expert)


def test_the_probe_runs_on_a_checkpoint_and_prints_a_row_per_group(tmp_path: Path) -> None:
    model = save_model(tmp_path)
    rows = probe_base(model, VIRL, 24)
    assert sum(row.total for row in rows) == 24
    table = probe_table(rows).splitlines()
    assert len(table) == len(rows) + 1 and table[1].startswith(rows[0].group)
