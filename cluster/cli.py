"""The `revisor` command: one entry point, one subcommand per job.

Subcommands import their modules only when chosen, so `revisor play` starts in a blink and
never loads torch or Ray.
"""

from __future__ import annotations

import importlib
import sys

from pydantic import ValidationError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("cluster.plan.planner", "placement and per-GPU memory of a configuration, before launch"),
    "import-gguf": ("rollout_workers.gguf_import", "a GGUF model file as a checkpoint directory every part loads"),
    "pretrain": ("cluster.job.pretrain", "a base model with general skills from the generated corpus, cached by settings"),
    "play": ("cluster.play", "play episodes of a task with a scripted policy"),
    "report": ("cluster.results.report", "plots and a Markdown report of one or more run directories"),
    "study": ("cluster.study.run", "both arms of the study from one init, at matched training compute"),
    "scale": ("cluster.job.control", "set the number of rollout workers of a running job"),
    "study-report": ("cluster.study.report", "the study's figures and tables from STUDY_DIR/study.json"),
    "tiny-model": ("rollout_workers.tiny_models.cli", "build a tiny LM or VLM (with tokenizer) saved by path"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SUBCOMMANDS:
        print("usage: revisor <command> [options]\n\ncommands:")
        for name, (_, summary) in SUBCOMMANDS.items():
            print(f"  {name:<12} {summary}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module_name, _ = SUBCOMMANDS[argv[0]]
    try:
        return importlib.import_module(module_name).main(argv[1:])
    except ValidationError as error:
        print(f"revisor {argv[0]}: invalid settings\n{error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
