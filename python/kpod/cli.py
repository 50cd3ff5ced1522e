"""The ``kpod`` command line.

Each command group lives in its own module exposing ``register(subparsers)``;
those modules must not import torch or transformers at import time, so that
``kpod --help`` stays instant and scheduler-only installs work.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (module, human description) in the order shown by `kpod --help`.
_COMMAND_MODULES: tuple[str, ...] = (
    "kpod.commands.run",
    "kpod.commands.data",
    "kpod.commands.weights",
    "kpod.commands.difficulty",
    "kpod.commands.train",
    "kpod.commands.eval",
    "kpod.commands.bench",
)


def build_parser() -> argparse.ArgumentParser:
    from kpod import __version__

    parser = argparse.ArgumentParser(
        prog="kpod",
        description="Keypoint-based progressive chain-of-thought distillation.",
    )
    parser.add_argument("--version", action="version", version=f"kpod {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command group not present in this build
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("kpod: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"kpod {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
