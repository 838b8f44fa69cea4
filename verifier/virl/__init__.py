"""Verifier for V-IRL navigation: parse answers, check detection, score actions."""

from verifier.virl.detection import detection_problem, named_landmarks, reports_intersection
from verifier.virl.parse import ParsedAnswer, normalise_action, parse_answer
from verifier.virl.verify import (
    CORRECT,
    MAX_RESPONSE_CHARS,
    StepTarget,
    VIRLVerdict,
    out_of_attempts,
    verify,
)

__all__ = [
    "CORRECT", "MAX_RESPONSE_CHARS", "ParsedAnswer", "StepTarget", "VIRLVerdict",
    "detection_problem", "named_landmarks", "normalise_action", "out_of_attempts",
    "parse_answer", "reports_intersection", "verify",
]
