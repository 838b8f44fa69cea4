"""Command-line flags from a benchmark's settings model: one flag per field, its default and
help taken from the model, so a benchmark's settings are written once."""

from __future__ import annotations

import argparse
from typing import TypeVar

from pydantic import BaseModel

Settings = TypeVar("Settings", bound=BaseModel)


def parse_settings(model: type[Settings], description: str | None) -> Settings:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, field in model.model_fields.items():
        parser.add_argument(f"--{name.replace('_', '-')}", default=field.default,
                            type=type(field.default), help=field.description)
    return model(**vars(parser.parse_args()))
