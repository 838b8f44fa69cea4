"""V-IRL episodes: the expert walks every built-in route; revision and failure rules hold."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.episode import Episode
from contracts.tasks import VIRLConfig
from envs.virl import make_episode, routes_for
from envs.virl.geometry import RELATIVE, compass, relative_action

EXAMPLE = str(Path(__file__).parent / "data" / "virl_routes_example.json")


def _run_expert(config, seed):
    episode = make_episode(config, seed)
    observation = episode.observe()
    assert isinstance(episode, Episode) and observation.text
    steps = 0
    while not episode.done:
        transition = episode.submit(episode.expert_answer())
        steps += 1
        assert transition.verdict.reward == 1.0, (seed, transition.verdict)
        assert transition.verdict.outcome == "correct" and transition.success
        assert transition.done == episode.done
        if not transition.done:
            assert transition.restart and transition.next is not None
    info = episode.info()
    assert info["solved_positions"] == info["positions"] == steps
    assert info["failed_positions"] == 0 and transition.next is None
    assert episode.steps[-1].kind == "stop"
    return episode


@pytest.mark.parametrize("rule", ["id", "ood"])
def test_expert_walks_every_training_route(rule):
    config = VIRLConfig(rule=rule)
    for seed in range(len(routes_for(config))):
        _run_expert(config, seed)


@pytest.mark.parametrize("rule", ["id", "ood"])
@pytest.mark.parametrize("vision", [False, True])
def test_expert_walks_every_benchmark_route(rule, vision):
    config = VIRLConfig(rule=rule, vision=vision, route_source="synthetic-benchmark",
                        image_tile_px=64)
    assert len(routes_for(config)) == 18
    for seed in range(18):
        _run_expert(config, seed)


@pytest.mark.parametrize("rule", ["id", "ood"])
@pytest.mark.parametrize("vision", [False, True])
def test_expert_walks_a_route_file_in_the_published_shape(rule, vision):
    config = VIRLConfig(rule=rule, vision=vision, route_source=EXAMPLE, image_tile_px=64)
    for seed in range(4):
        episode = _run_expert(config, seed)
        assert episode.route.route_id == f"virl_routes_example:{seed % 2}"


def test_walk_follows_the_route():
    episode = make_episode(VIRLConfig(route_source=EXAMPLE), 0)
    kinds = [step.kind for step in episode.steps]
    # the walk starts at the start place's street-view position, turns there and at the two
    # intersections of the file's geocode_list, and stops at its last point
    assert episode.steps[0].geocode == (51.50011000000001, -0.12011)
    assert kinds[0] == "turn" and kinds[-1] == "stop"
    turns = [step for step in episode.steps if step.kind == "turn"]
    assert [t.target_heading for t in turns] == [358, 89, 54]
    assert [t.key_index for t in turns] == [0, 1, 2]
    assert [t.at_intersection for t in turns] == [False, True, True]
    assert kinds.count("forward") >= 3
    between = [s for s in episode.steps if s.key_index is None]
    assert between and all(not s.sightings and not s.at_intersection for s in between)
    assert episode.instructions == (
        "Turn to face north (358 degrees).",
        "Move forward until you reach the intersection where Blue Door Bakery is on your front.",
        "Turn to face east (89 degrees).",
        "Move forward until you reach the intersection where Tidewater Bank is on your left front.",
        "Turn to face northeast (54 degrees).",
        "Move forward until you reach the destination, where Copper Kettle Cafe is on your left.",
    )


def test_landmark_sides_rotate_with_the_walker():
    episode = make_episode(VIRLConfig(route_source=EXAMPLE), 0)
    at_intersection = [s for s in episode.steps if s.key_index == 1]
    arriving, turned = at_intersection
    assert arriving.heading == 358 and arriving.sightings[0].side == "front"
    assert turned.heading == 89 and turned.sightings[0].side == "left"


@pytest.mark.parametrize("rule", ["id", "ood"])
def test_expected_actions_follow_the_rule(rule):
    episode = make_episode(VIRLConfig(rule=rule), 7)
    for step in episode.steps:
        if step.kind == "turn":
            direction = compass(step.target_heading) if rule == "id" else \
                relative_action(step.heading, step.target_heading)
            assert step.action(rule) == f"turn_direction({direction})"
            assert rule == "id" or direction in RELATIVE


def test_wrong_answers_get_feedback_then_the_walker_moves_on():
    config = VIRLConfig(rule="id")
    episode = make_episode(config, 11)
    first = episode.submit('{"action": "stop()"}')
    assert (first.verdict.outcome, first.verdict.reward) == ("wrong_action", -1.0)
    assert not first.done and not first.restart and first.success
    assert first.next.text == first.verdict.feedback and first.next.images == ()
    second = episode.submit("I am not sure.")
    assert (second.verdict.outcome, second.verdict.reward) == ("step_limit", -1.0)
    assert second.restart and not second.success and not second.done
    assert episode.position == 1 and "Action: turn_direction(" in second.next.text
    while not episode.done:
        last = episode.submit(episode.expert_answer())
        assert last.verdict.reward == 1.0
    assert last.done and not last.success
    info = episode.info()
    assert info["failed_positions"] == 1
    assert info["solved_positions"] == info["positions"] - 1
    with pytest.raises(RuntimeError):
        episode.submit("stop()")


@pytest.mark.parametrize("rule", ["id", "ood"])
def test_mistaken_answers_pick_a_wrong_action_in_the_expert_s_words(rule):
    import random

    rng = random.Random(0)
    for seed in range(20):
        episode = make_episode(VIRLConfig(rule=rule), seed)
        while not episode.done:
            mistake = json.loads(episode.mistaken_answer(rng))
            expert = json.loads(episode.expert_answer())
            assert mistake["action"] != expert["action"]
            assert {k: v for k, v in mistake.items() if k != "action"} == \
                {k: v for k, v in expert.items() if k != "action"}
            verdict = episode.submit(json.dumps(mistake)).verdict
            assert verdict.outcome == "wrong_action", verdict
            episode.submit(episode.expert_answer())


def test_a_revision_that_succeeds_keeps_the_episode_successful():
    episode = make_episode(VIRLConfig(), 2)
    assert episode.submit("forward()").verdict.outcome == "wrong_action"
    fixed = episode.submit(episode.expert_answer())
    assert fixed.verdict.success and fixed.success and fixed.restart
    assert episode.info()["first_try_positions"] == 0
    assert episode.info()["solved_positions"] == 1


def test_one_attempt_per_position():
    episode = make_episode(VIRLConfig(max_attempts_per_position=1), 0)
    transition = episode.submit("forward()")
    assert transition.verdict.outcome == "step_limit" and transition.restart


def test_vision_detection_is_checked_first():
    episode = make_episode(VIRLConfig(vision=True, route_source=EXAMPLE, image_tile_px=64), 0)
    while not episode.steps[episode.position].sightings:  # nothing in sight at the start
        episode.submit(episode.expert_answer())
    observation = episode.observe()
    assert len(observation.images) == 1 and observation.images[0].size == (130, 130)
    assert observation.image_refs[0].startswith("virl:")
    answer = json.loads(episode.expert_answer())
    answer["current observation"] = "Nothing here."
    verdict = episode.submit(json.dumps(answer)).verdict
    assert (verdict.outcome, verdict.reward, verdict.recognition_ok) == \
        ("detection_failed", -1.5, False)
    assert "Blue Door Bakery" in verdict.feedback
    ok = episode.submit(episode.expert_answer()).verdict
    assert ok.recognition_ok is True and ok.reward == 1.0


def test_text_observations_are_not_scored():
    episode = make_episode(VIRLConfig(route_source=EXAMPLE), 0)
    answer = json.loads(episode.expert_answer())
    answer["current observation"] = "Nothing here."
    verdict = episode.submit(json.dumps(answer)).verdict
    assert verdict.reward == 1.0 and verdict.recognition_ok is None


def test_prompts_show_heading_history_and_action_space():
    episode = make_episode(VIRLConfig(rule="ood"), 5)
    first = episode.observe().text
    assert "(nothing yet" in first and "slightly left" in first and "northeast" not in first.split(
        "Action space:")[1].split("\n")[0]
    assert f"({episode.steps[0].heading} degrees)" in first
    episode.submit(episode.expert_answer())
    second = episode.observe().text
    assert f"1. Facing {compass(episode.steps[0].heading)}" in second
    vision = make_episode(VIRLConfig(vision=True, image_tile_px=64), 5).observe().text
    assert "2x2 grid" in vision and episode.steps[0].sightings[0].name not in vision.split(
        "Current observation:")[1]


def test_episodes_are_deterministic():
    config = VIRLConfig(rule="ood", route_source=EXAMPLE)
    a, b = make_episode(config, 9), make_episode(config, 9)
    assert a.steps == b.steps and a.observe() == b.observe()
    assert make_episode(config, 1).steps[0].heading != make_episode(config, 3).steps[0].heading


def test_history_can_be_capped():
    config = VIRLConfig(max_history_steps=1)
    episode = make_episode(config, 4)
    for _ in range(3):
        episode.submit(episode.expert_answer())
    text = episode.observe().text
    assert "3. Facing" in text and "1. Facing" not in text


def test_prompt_template_from_a_file(tmp_path):
    template = tmp_path / "prompt.txt"
    template.write_text('Go! $instructions | $action_space | $history | $heading | '
                        '$observation | $answer_format {"json": "braces"}')
    episode = make_episode(VIRLConfig(prompt_template=template), 0)
    assert episode.observe().text.startswith("Go! 1. Turn to face")
    bad = tmp_path / "bad.txt"
    bad.write_text("$instructions $nonsense")
    with pytest.raises(ValueError, match="nonsense"):
        make_episode(VIRLConfig(prompt_template=bad), 0).observe()


def test_config_errors_name_the_field():
    with pytest.raises(ValidationError, match="route_source"):
        VIRLConfig(route_source="no/such/file.json")
    with pytest.raises(ValidationError, match="rule"):
        VIRLConfig(rule="relative")
    with pytest.raises(ValidationError, match="max_attempts_per_position"):
        VIRLConfig(max_attempts_per_position=0)
    with pytest.raises(ValidationError, match="unknown"):
        VIRLConfig(unknown=1)
    assert VIRLConfig().task_name == "virl-l" and VIRLConfig(vision=True).task_name == "virl-vl"
    assert VIRLConfig(rule="ood", route_source="synthetic-benchmark").variant == "ood-benchmark"
