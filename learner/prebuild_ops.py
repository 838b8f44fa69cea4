"""Compile DeepSpeed's CPU communication op once, at install time.

DeepSpeed on CPU JIT-compiles a shared-memory all-reduce op the first time a process group
starts (45-75 s here). Doing it during install keeps that cost out of every run and test.
"""

from __future__ import annotations


def main() -> None:
    from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder

    builder = ShareMemCommBuilder()
    if builder.is_compatible():
        builder.load(verbose=False)
        print("revisor: DeepSpeed CPU shared-memory comm op is built")
    else:
        print("revisor: DeepSpeed CPU shared-memory comm op is not available here; skipped")


if __name__ == "__main__":
    main()
