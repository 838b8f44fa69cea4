"""The pretraining corpus: general skills under many rules; the task's answer format only
under rules other than the study's."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from contracts.tasks import GPConfig
from envs.general_points import render_prompt, sample_hand
from envs.general_points.corpus import (
    OBJECT_KEYS,
    STUDY_RULES,
    CorpusConfig,
    document,
    documents,
    hand_numbers,
)
from envs.general_points.prompt import render_cards_prompt
from verifier.general_points.arithmetic import parse_formula
from verifier.general_points.parse import parse_answer

CORPUS = documents(CorpusConfig(documents=3000))
SOLUTION = re.compile(r"^numbers ([\d, ]+); formula (\S+) equals (\d+)$")


def solution(doc) -> tuple[str, str, str]:
    """Numbers, formula and target of a `solve` answer, in any of its forms."""
    if doc.answer.startswith('{"cards"'):
        answer = parse_answer(doc.answer)
        stated = doc.prompt.split("are ")[1].split(". ")[0].replace(" and ", ", ").split(", ")
        assert list(answer.cards) == stated
        return ", ".join(map(str, answer.numbers)), answer.formula, "24"
    if doc.answer.startswith("{"):
        answer = json.loads(doc.answer)
        assert list(answer) == list(OBJECT_KEYS)
        return ", ".join(map(str, answer["numbers"])), answer["solution"], "24"
    return SOLUTION.match(doc.answer).groups()


def test_the_tasks_answer_format_appears_only_under_other_rules_than_the_studys() -> None:
    for doc in CORPUS:
        assert not re.search(r'[{}\[\]"]', doc.prompt), doc.prompt
    task_format = [doc for doc in CORPUS if re.search(r'"(cards|formula)"', doc.answer)]
    forms = Counter(doc.answer[:3] for doc in CORPUS if doc.kind == "solve")
    assert forms['{"c'] > 400 and forms['{"h'] > 300 and forms["num"] > 300, "all three forms"
    assert len(task_format) == forms['{"c'], "the task's keys only in its own object"
    assert not {doc.faces for doc in task_format} & set(STUDY_RULES.values())
    assert len({doc.faces for doc in task_format}) > 300, "many rules, so reading them pays"


def test_the_corpus_holds_both_study_rules_with_their_face_numbers() -> None:
    faces = Counter(doc.faces for doc in CORPUS if doc.kind == "solve")
    assert faces[STUDY_RULES["id"]] > 200 and faces[STUDY_RULES["ood"]] > 200
    assert len(faces) > 100, "other rules too, so that reading the stated rule pays"
    kings = [doc for doc in CORPUS if doc.kind == "solve" and doc.faces == STUDY_RULES["ood"]
             and re.search(r"K\. Make", doc.prompt)]
    assert kings and all(solution(doc)[0].endswith("13") for doc in kings)


def test_every_solution_uses_the_hands_numbers_and_reaches_the_target() -> None:
    solutions = [doc for doc in CORPUS if doc.kind == "solve"]
    assert len(solutions) > 1000
    for doc in solutions:
        numbers, formula, target = solution(doc)
        parsed = parse_formula(formula)
        assert parsed.value == int(target) == 24
        assert sorted(parsed.numbers) == sorted(int(n) for n in numbers.split(", "))


def test_arithmetic_documents_are_right() -> None:
    for doc in (d for d in CORPUS if d.kind == "arithmetic"):
        question = doc.prompt.removeprefix("What is ").removesuffix("?")
        assert doc.answer == f"{question} equals {parse_formula(question).value}"


def test_a_study_rule_document_reads_exactly_like_the_tasks_prompt() -> None:
    """The base model must read the task's own prompts: same words for the same rule."""
    for rule in ("id", "ood"):
        config = GPConfig(rule=rule, sorted_hand=True, prompt_template="compact.txt")
        hand = sample_hand(config, 7)
        corpus = CorpusConfig(prompt=config)
        assert render_cards_prompt(corpus.prompt, hand, STUDY_RULES[rule]) == \
            render_prompt(config, hand)
        assert hand_numbers(hand, STUDY_RULES[rule]) == [c.value(rule) for c in hand]


def test_documents_depend_only_on_settings_and_index() -> None:
    config = CorpusConfig(documents=10)
    assert document(config, 5) == documents(config)[5]
    assert documents(config) != documents(config.model_copy(update={"seed": 1}))


def test_bad_shares_are_refused() -> None:
    with pytest.raises(ValueError, match="shares"):
        CorpusConfig(shares={"solve": 0.0})
