"""The words the tiny models' tokenizer knows as single tokens.

Whole words shorten sequences (a GeneralPoints prompt is ~3x shorter than spelled out),
which is what makes CPU runs fast. The list comes from text the environments really produce
(rendered GeneralPoints prompts, expert answers and verifier feedback) plus a fixed list of
navigation words for V-IRL, so it is the same on every machine and every run.
Anything not listed is still tokenised, one character per token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from contracts.tasks import GPConfig
from envs.general_points import make_episode

WORD = re.compile(r"[A-Za-z_]+")

NAVIGATION_WORDS = """
north northeast east southeast south southwest west northwest
left right slightly ahead behind front back straight around across along toward towards
turn_direction forward stop turn face facing move moving go walk continue keep follow
until next intersection intersections destination start starting arrive arrived reach reached
landmark landmarks visible see seen side sides street streets avenue road block corner
heading headings direction directions compass degree degrees meter meters distance
route routes position positions step steps instruction instructions observation observations
action actions history current space valid available choose chose output expected
you your are is at on in of the a an and or not no yes to from by with near far there here
this that these those it its one two three four first last previous now then after before
when where which what view image images grid crop crops panorama
cafe restaurant bank bookstore books shop store market park museum library station hotel
pharmacy school church bakery bar gym theater theatre cinema office building hall tower
square plaza bridge garden gallery post
correct incorrect wrong try again attempt attempts feedback
navigate navigation navigating agent task city map goal
""".split()


def gp_corpus(seeds: range = range(40)) -> Iterator[str]:
    """GeneralPoints text: prompts (text and vision, both rules), expert answers and feedback."""
    bad_answers = ['{"cards": ["A"], "numbers": [1], "formula": "1+1"}', "24", "(((", "",
                   '{"cards": ["Z"], "formula": "99*99"}', '{"formula": "1/0"}']
    for rule in ("id", "ood"):
        for vision in (False, True):
            config = GPConfig(rule=rule, vision=vision)
            for seed in seeds:
                episode = make_episode(config, seed)
                yield episode.observe().text
                yield episode.expert_answer()
                for answer in bad_answers:
                    if not episode.done:
                        yield episode.submit(answer).verdict.feedback


def corpus_words() -> list[str]:
    """Every distinct word of the corpus in lower case and capitalised (sentences start with
    either), sorted so that token ids never depend on set order."""
    words = set(NAVIGATION_WORDS)
    for text in gp_corpus():
        words.update(WORD.findall(text))
    words = {form for word in words for form in (word, word.lower(), word.capitalize())}
    return sorted(word for word in words if len(word) > 1)
