"""The V-IRL verifier: tolerant parsing, the detection rule, and never raising."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.tasks import VIRLRewardTable
from contracts.verdict import Verdict
from verifier.virl import (
    MAX_RESPONSE_CHARS,
    StepTarget,
    normalise_action,
    out_of_attempts,
    parse_answer,
    reports_intersection,
    verify,
)

COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
TARGET = StepTarget(action="turn_direction(east)", directions=COMPASS,
                    visible=("Tidewater Bank",), others=("Blue Door Bakery", "Copper Kettle Cafe"),
                    at_intersection=True)
TABLE = VIRLRewardTable()


@pytest.mark.parametrize("answer", [
    '{"current observation": "An intersection; Tidewater Bank on my left.", '
    '"current instruction": "Turn to face east.", "action": "turn_direction(east)"}',
    "{'current observation': 'I'm at an intersection, Tidewater Bank's sign is left', "
    "'current instruction': 'Turn to face east.', 'action': 'turn_direction(east)',}",
    '```json\n{"current observation": "intersection, Tidewater Bank",\n'
    ' "action": "Turn_Direction( East )",\n}\n```',
    'Sure! Here is my answer:\n{"Current Observation": "Tidewater bank at the intersection", '
    '"Action": "turn direction(\'EAST\')"}\nGood luck.',
    'current_observation: intersection with TIDEWATER BANK\naction = turn_direction("east")',
    '{"current observation": "Tidewater Bank, intersection", "action": "turn_direction(E)"}',
])
def test_tolerant_answers_are_correct(answer):
    verdict = verify(answer, TARGET, vision=True)
    assert (verdict.outcome, verdict.reward, verdict.recognition_ok) == ("correct", 1.0, True)
    assert verdict.parsed_answer == "turn_direction(east)"


@pytest.mark.parametrize(("written", "canonical"), [
    ("forward()", "forward()"), ("FORWARD ( )", "forward()"), ("'stop()'", "stop()"),
    ("stop", "stop()"), ("turn_direction(slightly_left)", "turn_direction(slightly left)"),
    ("Turn-Direction(Slightly Right)", "turn_direction(slightly right)"),
    ('turn_direction("north-west")', "turn_direction(northwest)"),
    ("turn_direction( SouthEast )", "turn_direction(southeast)"),
    ("turn left", "turn_direction(left)"), ("turn_direction(up)", "turn_direction(up)"),
    ("forward(3)", None), ("turn_direction()", None), ("go north", None), ("", None),
])
def test_action_normalisation(written, canonical):
    assert normalise_action(written) == canonical


def test_bare_action_without_object_is_read():
    assert parse_answer("I will now stop().").action == "stop()"
    answer = parse_answer('{"current observation": "the action: stop() is tempting", '
                          '"action": "forward()"}')
    assert answer.action == "forward()" and "stop()" in answer.observation


@pytest.mark.parametrize(("answer", "outcome", "words"), [
    ('{"action": "turn_direction(west)"}', "wrong_action", "not the right action"),
    ('{"action": "turn_direction(left)"}', "wrong_action", "not a direction"),
    ('{"action": "jump()"}', "unparseable", "Cannot read the action"),
    ('{"current observation": "x"}', "unparseable", "no \"action\" field"),
    ("x" * (MAX_RESPONSE_CHARS + 1), "unparseable", "characters"),
])
def test_failures_have_one_outcome_and_feedback(answer, outcome, words):
    verdict = verify(answer, TARGET)
    assert verdict.outcome == outcome and verdict.reward == -1.0 and not verdict.success
    assert words in verdict.feedback and verdict.feedback.endswith(".")


@pytest.mark.parametrize(("observation", "problem"), [
    (None, "no current observation"),
    ("An intersection.", "misses Tidewater Bank"),
    ("Tidewater Bank at an intersection, Blue Door Bakery too", "names Blue Door Bakery"),
    ("Tidewater Bank, no intersection here", "misses the intersection"),
    ("Tidewater Bank. I am not at an intersection.", "misses the intersection"),
])
def test_detection_failures(observation, problem):
    fields = {"action": "turn_direction(east)"}
    if observation is not None:
        fields["current observation"] = observation
    answer = "{" + ", ".join(f'"{k}": "{v}"' for k, v in fields.items()) + "}"
    verdict = verify(answer, TARGET, vision=True)
    assert (verdict.outcome, verdict.reward) == ("detection_failed", -1.5)
    assert problem in verdict.feedback and verdict.recognition_ok is False


def test_intersection_claims_away_from_intersections():
    target = TARGET.model_copy(update={"at_intersection": False, "visible": (),
                                       "action": "forward()"})
    assert verify('{"current observation": "An intersection ahead", "action": "forward()"}',
                  target, vision=True).outcome == "detection_failed"
    for fine in ["No landmarks in sight.", "No intersection here.", "There isn't a crossing.",
                 "Walking between intersections."]:
        verdict = verify(f'{{"current observation": "{fine}", "action": "forward()"}}',
                         target, vision=True)
        assert verdict.outcome == "correct", fine


def test_longer_names_do_not_count_as_shorter_ones():
    target = StepTarget(action="stop()", directions=COMPASS, visible=("Oak Cafe 2",),
                        others=("Oak Cafe",))
    assert verify('{"current observation": "Oak Cafe 2 on the left", "action": "stop()"}',
                  target, vision=True).outcome == "correct"


def test_reports_intersection():
    assert reports_intersection("We are at a junction")
    assert not reports_intersection("Not at an intersection")
    assert reports_intersection("No shops, but an intersection")


def test_step_limit_replaces_minus_one_rows_only():
    wrong = verify('{"action": "stop()"}', TARGET)
    limited = out_of_attempts(wrong)
    assert limited.outcome == "step_limit" and limited.reward == TABLE.step_limit
    assert "No attempts are left" in limited.feedback
    detection = verify('{"action": "stop()"}', TARGET, vision=True)
    assert out_of_attempts(detection).outcome == "detection_failed"


def test_custom_rewards():
    table = VIRLRewardTable(correct=2.0, wrong_action=-0.5)
    assert verify("turn_direction(east)", TARGET, rewards=table).reward == 2.0
    assert verify("forward()", TARGET, rewards=table).reward == -0.5


answer_like = st.builds(
    lambda parts: "".join(parts),
    st.lists(st.sampled_from([
        "{", "}", '"', "'", ",", ":", "\n", "```", "\\", "action", "current observation",
        "current instruction", "turn_direction(", ")", "forward()", "stop()", "east",
        "slightly left", "intersection", "Tidewater Bank", "not", " ", "(", "=",
    ]) | st.text(max_size=8), max_size=40))


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400) | answer_like, vision=st.booleans(),
       ood=st.booleans())
def test_any_text_gets_a_reward_from_the_table(text, vision, ood):
    target = TARGET if not ood else TARGET.model_copy(update={
        "action": "turn_direction(slightly left)",
        "directions": ("left", "right", "slightly left", "slightly right")})
    verdict = verify(text, target, vision=vision)
    assert isinstance(verdict, Verdict)
    assert verdict.reward in TABLE.values()
    assert verdict.outcome in {"correct", "wrong_action", "unparseable", "detection_failed"}
    assert verdict.feedback and verdict.success == (verdict.outcome == "correct")
    assert (verdict.recognition_ok is None) == (not vision)


@pytest.mark.parametrize("text", [
    "'" * MAX_RESPONSE_CHARS,
    "action: '" + "x' " * (MAX_RESPONSE_CHARS // 3 - 4),
    '"current observation": "' + '\\"' * (MAX_RESPONSE_CHARS // 2 - 20),
    ("action: " * (MAX_RESPONSE_CHARS // 8))[:MAX_RESPONSE_CHARS],
    "turn_direction(" * (MAX_RESPONSE_CHARS // 15),
    "intersection not " * (MAX_RESPONSE_CHARS // 17),
])
def test_long_adversarial_text_is_quick(text):
    start = time.perf_counter()
    assert verify(text, TARGET, vision=True).reward in TABLE.values()
    assert time.perf_counter() - start < 0.5


def test_non_string_input_does_not_raise():
    assert verify(None, TARGET).outcome == "unparseable"  # type: ignore[arg-type]
