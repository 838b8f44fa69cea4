"""GeneralPoints episodes, prompts and card images."""

from __future__ import annotations

import pytest

from contracts.tasks import CardImage, GPConfig
from envs.general_points import make_episode, render_hand, sample_hand
from envs.general_points.cards import Card
from envs.registry import make_episode as make_any_episode


def test_expert_answer_succeeds_on_the_first_attempt_for_every_variant():
    for config in [GPConfig(), GPConfig(rule="ood"), GPConfig(vision=True, colours="red")]:
        for seed in range(30):
            episode = make_episode(config, seed)
            transition = episode.submit(episode.expert_answer())
            assert transition.done and transition.success and transition.verdict.reward == 5.0


def test_attempt_limit_ends_the_episode_with_the_step_limit_reward():
    episode = make_episode(GPConfig(max_attempts=3), seed=1)
    transitions = [episode.submit("no idea") for _ in range(3)]
    assert [t.done for t in transitions] == [False, False, True]
    assert [t.verdict.outcome for t in transitions] == ["illegal", "illegal", "step_limit"]
    assert transitions[-1].verdict.reward == -1.0 and not transitions[-1].success
    assert transitions[0].next.text == transitions[0].verdict.feedback
    assert not transitions[0].restart
    with pytest.raises(RuntimeError, match="ended"):
        episode.submit("again")


def test_revision_after_feedback_can_still_succeed():
    episode = make_episode(GPConfig(), seed=2)
    assert not episode.submit('{"formula": "1+1"}').done
    final = episode.submit(episode.expert_answer())
    assert final.done and final.success and episode.attempts == 2


def test_prompt_states_rule_target_and_format():
    text = make_episode(GPConfig(rule="ood", target=30), seed=0).observe().text
    assert "J is 11, Q is 12 and K is 13" in text and "equals 30" in text
    assert '"formula"' in text and '"cards"' in text and '"numbers"' in text
    id_text = make_episode(GPConfig(), seed=0).observe().text
    assert "J, Q and K are each 10" in id_text


def test_text_prompt_lists_the_cards_and_vision_prompt_shows_an_image():
    text_episode = make_episode(GPConfig(), seed=4)
    ranks = [card.rank for card in text_episode.hand]
    assert all(rank in text_episode.observe().text for rank in ranks)
    vision = make_episode(GPConfig(vision=True), seed=4).observe()
    assert len(vision.images) == 1 and vision.image_refs[0].startswith("gp:")


def test_prompt_template_can_be_replaced_from_a_file(tmp_path):
    template = tmp_path / "prompt.txt"
    template.write_text("Cards: $cards Target $target. Rule: $face_rule. Format: $answer_format")
    text = make_episode(GPConfig(prompt_template=template), seed=0).observe().text
    assert text.startswith("Cards: Your cards are") and "Target 24" in text
    bad = tmp_path / "bad.txt"
    bad.write_text("$cards $colour")
    with pytest.raises(ValueError, match="colour"):
        make_episode(GPConfig(prompt_template=bad), seed=0).observe()


@pytest.mark.parametrize("rule, sentence", [("id", "J, Q and K are each 10."),
                                            ("ood", "J is 11, Q is 12 and K is 13.")])
def test_a_built_in_template_is_named_without_a_path(rule, sentence):
    text = make_episode(GPConfig(rule=rule, prompt_template="compact.txt"), seed=3).observe().text
    assert text.startswith("Your cards are") and "Make 24." in text and text.endswith(sentence)
    with pytest.raises(ValueError, match="no such file.*built-in: compact.txt, prompt.txt"):
        make_episode(GPConfig(prompt_template="terse.txt"), seed=0).observe()


def test_registry_builds_gp_episodes_from_plain_settings():
    from pydantic import TypeAdapter

    from contracts.tasks import TaskConfig

    config = TypeAdapter(TaskConfig).validate_python({"task": "gp", "rule": "ood"})
    episode = make_any_episode(config, 5)
    assert episode.task == "gp-l" and episode.variant == "ood"


def hand(*ranks: str, suit: str = "spades") -> tuple[Card, ...]:
    return tuple(Card(rank=rank, suit=suit) for rank in ranks)


LOOKS = [CardImage(layout="study"), CardImage(layout="tiles"), CardImage(layout="tiles", tile_px=32)]


@pytest.mark.parametrize(("look", "size"), zip(LOOKS, [(480, 172), (128, 128), (64, 64)], strict=True))
def test_card_image_size_and_determinism(look, size):
    image = render_hand(hand("A", "7", "10", "K"), look)
    assert image.mode == "RGB" and image.size == size
    assert image.tobytes() == render_hand(hand("A", "7", "10", "K"), look).tobytes()


@pytest.mark.parametrize("look", LOOKS)
def test_black_and_red_suits_render_differently(look):
    black = render_hand(hand("A", "7", "10", "K", suit="spades"), look)
    red = render_hand(hand("A", "7", "10", "K", suit="hearts"), look)
    assert black.tobytes() != red.tobytes()
    reds = [pixel for pixel in red.getdata() if pixel[0] > 150 and pixel[1] < 60]
    assert len(reds) > 0.02 * red.width * red.height
    assert not [pixel for pixel in black.getdata() if pixel[0] > 150 and pixel[1] < 60]


@pytest.mark.parametrize("look", LOOKS)
def test_each_rank_renders_distinguishably(look):
    images = {rank: render_hand(hand("2", "3", "4", rank), look).tobytes()
              for rank in ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")}
    assert len(set(images.values())) == 13


@pytest.mark.parametrize("look", LOOKS)
def test_every_suit_renders_distinguishably(look):
    images = {suit: render_hand(hand("5", suit=suit), look).tobytes()
              for suit in ("spades", "clubs", "hearts", "diamonds")}
    assert len(set(images.values())) == 4


def test_episode_hand_comes_from_the_seeded_sampler():
    config = GPConfig(vision=True, colours="mixed")
    assert make_episode(config, 9).hand == sample_hand(config, 9)


def test_registry_builds_virl_episodes_too():
    from pydantic import TypeAdapter

    from contracts.tasks import TaskConfig

    config = TypeAdapter(TaskConfig).validate_python({"task": "virl", "rule": "ood", "vision": True})
    episode = make_any_episode(config, 3)
    assert episode.task == "virl-vl"
    assert episode.submit(episode.expert_answer()).verdict.reward == 1.0


@pytest.mark.parametrize("rule", ["id", "ood"])
def test_mistaken_answers_are_well_formed_and_rejected(rule):
    """Revision demonstrations need mistakes a learner makes: the hand's own numbers in a legal
    formula that misses the target, never a parse failure, and reproducible from the seed."""
    import random

    outcomes = []
    for seed in range(200):
        episode = make_episode(GPConfig(rule=rule), seed)
        mistake = episode.mistaken_answer(random.Random(seed))
        assert mistake == make_episode(GPConfig(rule=rule), seed).mistaken_answer(random.Random(seed))
        transition = episode.submit(mistake)
        assert not transition.success and not transition.done
        outcomes.append(transition.verdict.outcome)
    assert set(outcomes) <= {"wrong_value", "wrong_numbers"}
    assert outcomes.count("wrong_value") > 190
