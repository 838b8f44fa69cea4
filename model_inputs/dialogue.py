"""Token ids of a growing sequential-revision dialogue, built without re-tokenising answers.

The model's chat template is rendered once, on three small dialogues with placeholder texts,
and the differences between the renderings give the template's pieces: what closes an
assistant turn, what opens a user turn, and what closes it and opens the next assistant turn.
Each turn's prompt is then the previous prompt + the response ids exactly as sampled + those
pieces around the tokenised feedback. The learner sees token for token what the engine saw.

For tokenisers that split each piece the same way alone as inside the whole text (special
tokens between pieces, word- or character-level vocabularies) the result equals tokenising
the rendered dialogue; with BPE a merge across a piece boundary can differ from it, and the
incremental ids are the ones the engine saw and the learner must train on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.episode import Observation

Message = dict[str, Any]
Render = Callable[[list[Message], bool], str]
"""(messages, add_generation_prompt) -> the chat template's text."""
Encode = Callable[[str], list[int]]
"""Text -> token ids, without adding special tokens of its own."""

_PROMPT, _ANSWER, _FEEDBACK = "[[revisor-prompt]]", "[[revisor-answer]]", "[[revisor-feedback]]"


class TemplateError(ValueError):
    """The chat template cannot be extended turn by turn."""


class DialogueTokens:
    """The chat template's pieces as token ids, and the prompts built from them."""

    def __init__(self, render: Render, encode: Encode) -> None:
        self.render = render
        self.encode = encode
        close, user_open, user_close = template_pieces(render)
        self.close_ids = encode(close)
        """Ids that end an assistant turn (the end-of-turn token first, if the template has one)."""
        self.user_open_ids = encode(user_open)
        self.user_close_ids = encode(user_close)
        """Ids that close a user turn and open the next assistant turn (the generation prompt)."""

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, chat: Any | None = None) -> DialogueTokens:
        """Pieces of `chat`'s template (a processor, for vision models) tokenised by `tokenizer`."""
        chat = chat or tokenizer

        def render(messages: list[Message], add_generation_prompt: bool) -> str:
            return chat.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )

        def encode(text: str) -> list[int]:
            return tokenizer.encode(text, add_special_tokens=False)

        return cls(render, encode)

    def opening(self, observation: Observation) -> list[int]:
        """The ids of a dialogue's first prompt: one user message, then the generation prompt."""
        message = user_message(observation.text, len(observation.images))
        return self.encode(self.render([message], True))

    def answer(self, text: str) -> list[int]:
        """The ids of `text` as an engine emits it when it stops: the text, then the
        end-of-turn token (what SFT trains on, so the policy learns to stop)."""
        return self.encode(text) + self.close_ids[:1]

    def ends_turn(self, response_ids: list[int]) -> bool:
        """Whether the response ends with the template's end-of-turn token (the model stopped)."""
        return bool(response_ids and self.close_ids) and response_ids[-1] == self.close_ids[0]

    def continuation(self, response_ids: list[int], feedback: str) -> list[int]:
        """The ids that follow a response: the rest of the turn's closing, then the feedback as
        a user turn, then the next generation prompt. A response cut at max_tokens gets the
        whole closing, so the dialogue stays well-formed."""
        close = self.close_ids[1:] if self.ends_turn(response_ids) else self.close_ids
        return close + self.user_open_ids + self.encode(feedback) + self.user_close_ids


def user_message(text: str, images: int = 0) -> Message:
    """A user message; with images, in the list form that vision chat templates expect."""
    if not images:
        return {"role": "user", "content": text}
    content = [{"type": "image"} for _ in range(images)] + [{"type": "text", "text": text}]
    return {"role": "user", "content": content}


def template_pieces(render: Render) -> tuple[str, str, str]:
    """(assistant close, user open, user close + generation prompt) of a chat template.

    Raises TemplateError when the template rewrites earlier text as a dialogue grows (some
    templates drop earlier reasoning, for example): then no prompt can be built incrementally.
    """
    user = {"role": "user", "content": _PROMPT}
    answer = {"role": "assistant", "content": _ANSWER}
    feedback = {"role": "user", "content": _FEEDBACK}
    opened = render([user], True)
    answered = render([user, answer], False)
    revised = render([user, answer, feedback], True)
    if not answered.startswith(opened + _ANSWER):
        raise TemplateError("the chat template does not render an answer right after its "
                            f"generation prompt: {answered!r}")
    if not revised.startswith(answered) or revised.count(_FEEDBACK) != 1:
        raise TemplateError("the chat template changes earlier turns when a user turn follows "
                            f"an answer: {revised!r}")
    user_open, _, user_close = revised[len(answered):].partition(_FEEDBACK)
    return answered[len(opened) + len(_ANSWER):], user_open, user_close
