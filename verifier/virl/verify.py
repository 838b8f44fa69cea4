"""Score one V-IRL answer: one outcome from the reward table and one feedback sentence."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from contracts.tasks import VIRLRewardTable
from contracts.verdict import Verdict
from verifier.virl.detection import detection_problem
from verifier.virl.parse import ParsedAnswer, normalise_action, parse_answer

MAX_RESPONSE_CHARS = 8192
CORRECT = "correct"
"""The outcome of a right action: the one that moves the walker on (per-step accuracy counts it)."""


class StepTarget(BaseModel):
    """What the route calls for at one position, as the verifier needs it."""

    model_config = ConfigDict(frozen=True)

    action: str
    """The right action, canonical: 'forward()', 'stop()' or 'turn_direction(<direction>)'."""
    directions: tuple[str, ...]
    """The directions of the active action space (absolute or relative)."""
    visible: tuple[str, ...] = ()
    """Names of the landmarks in sight."""
    others: tuple[str, ...] = ()
    """Names of the route's other landmarks (reporting one of them is a detection error)."""
    at_intersection: bool = False


class VIRLVerdict(Verdict):
    """A V-IRL verdict with the fields the verifier read from the answer."""

    observation: str = ""
    instruction: str = ""


def verify(response: str, target: StepTarget, vision: bool = False,
           rewards: VIRLRewardTable | None = None) -> VIRLVerdict:
    """Judge one answer at one position. Never raises, whatever `response` holds.

    Vision answers first pass the detection check (verifier.virl.detection); text answers'
    observations are not scored, as in the study.
    """
    table = rewards or VIRLRewardTable()
    if not isinstance(response, str) or len(response) > MAX_RESPONSE_CHARS:
        return _verdict(table, "unparseable",
                        f"The answer is not text of at most {MAX_RESPONSE_CHARS} characters.")
    answer = parse_answer(response)
    recognised = None
    if vision:
        problem = detection_problem(answer.observation, target.visible, target.others,
                                    target.at_intersection)
        recognised = not problem
        if problem:
            return _verdict(table, "detection_failed", problem, answer, recognition_ok=False)
    verdict = _judge_action(answer, target, table)
    return verdict.model_copy(update={"recognition_ok": recognised})


def out_of_attempts(verdict: VIRLVerdict, rewards: VIRLRewardTable | None = None) -> VIRLVerdict:
    """The last allowed attempt at a position failed: the step-limit row replaces a -1 row.

    A detection failure keeps its own row: it is checked first and weighs more.
    """
    if verdict.success or verdict.outcome == "detection_failed":
        return verdict
    table = rewards or VIRLRewardTable()
    return verdict.model_copy(update={
        "outcome": "step_limit", "reward": table.step_limit,
        "feedback": f"{verdict.feedback} No attempts are left here; the walk goes on."})


def _judge_action(answer: ParsedAnswer, target: StepTarget, table: VIRLRewardTable) -> VIRLVerdict:
    if not answer.action:
        return _verdict(table, "unparseable", 'The answer has no "action" field; write '
                        "forward(), stop() or turn_direction(<direction>).", answer)
    action = normalise_action(answer.action)
    if action is None:
        return _verdict(table, "unparseable", f"Cannot read the action {_short(answer.action)}; "
                        "write forward(), stop() or turn_direction(<direction>).", answer)
    if action == target.action:
        return _verdict(table, CORRECT, f"Correct: {action}.", answer, action)
    direction = action.removeprefix("turn_direction(").removesuffix(")")
    if action.startswith("turn_direction(") and direction not in target.directions:
        return _verdict(table, "wrong_action", f"{_short(direction)} is not a direction of this "
                        f"action space ({', '.join(target.directions)}).", answer, action)
    return _verdict(table, "wrong_action", f"{action} is not the right action here; check the "
                    "current instruction against what you see.", answer, action)


def _verdict(table: VIRLRewardTable, outcome: str, feedback: str,
             answer: ParsedAnswer | None = None, action: str = "", **extra: object) -> VIRLVerdict:
    answer = answer or ParsedAnswer()
    return VIRLVerdict(
        reward=getattr(table, outcome), success=outcome == CORRECT, outcome=outcome,
        feedback=feedback, parsed_answer=action or (answer.action or "")[:200],
        observation=(answer.observation or "")[:2000],
        instruction=(answer.instruction or "")[:2000], **extra)


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")
