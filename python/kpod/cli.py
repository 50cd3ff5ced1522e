"""The ``kpod`` command line.

Each command group lives in its own module exposing ``register(subparsers)``;
those modules must not import torch, transformers, yaml or pyarrow at import
time, so that ``kpod --help`` stays instant and a numpy-only install
(``pip install kpod``) can run ``kpod --help``, ``kpod bench`` and
``kpod schedule``. A command that needs an optional dependency imports it when
it runs; if it is missing, :func:`main` names the extra that installs it
instead of printing a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

# Command modules in the order shown by `kpod --help`; one that is not present
# in this build is skipped.
_COMMAND_MODULES: tuple[str, ...] = (
    "kpod.commands.run",
    "kpod.commands.teacher",
    "kpod.commands.data",
    "kpod.commands.weights",
    "kpod.commands.difficulty",
    "kpod.commands.train",
    "kpod.commands.eval",
    "kpod.commands.compare",
    "kpod.commands.bench",
    "kpod.commands.schedule",
)

# Top-level module -> the extra of pyproject.toml that installs it.
_EXTRAS: dict[str, str] = {
    **dict.fromkeys(
        (
            "torch",
            "transformers",
            "datasets",
            "peft",
            "accelerate",
            "sklearn",
            "safetensors",
            "tokenizers",
            "tqdm",
            "yaml",
            "matplotlib",
            "gguf",
        ),
        "train",
    ),
    "pyarrow": "parquet",
    **dict.fromkeys(("psutil", "apricot", "submodlib", "submodlib_cpp"), "bench"),
}
_EXTRA_WHAT = {
    "train": "the training stack",
    "parquet": "pyarrow (Parquet and Arrow input)",
    "bench": "the benchmark peers",
}


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """What to install for a missing optional dependency, or None if ``exc`` is not one."""
    top = (exc.name or "").split(".")[0]
    extra = _EXTRAS.get(top)
    if extra is None:
        return None
    return (
        f"this needs {_EXTRA_WHAT[extra]}, and the module {top!r} is not installed; "
        f'install it with: pip install "kpod[{extra}]"'
    )


def _unavailable(name: str, message: str) -> Any:
    def run(args: argparse.Namespace) -> NoReturn:
        raise SystemExit(f"kpod {name}: error: {message}")

    return run


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
            message = missing_extra_message(exc)
            if message is None:
                raise
            # A command module that imports an optional dependency at import
            # time (a bug: see the module docstring) still shows up, and says
            # what to install instead of breaking every other command.
            short = name.rsplit(".", 1)[-1]
            stub = sub.add_parser(short, help=f"(unavailable: {message})", add_help=False)
            stub.add_argument("rest", nargs=argparse.REMAINDER)
            stub.set_defaults(func=_unavailable(short, message))
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    first = next((w for w in words if not w.startswith("-")), None)
    command = f"kpod {first}" if first else "kpod"
    try:
        # Parsing can import too (an option's type converter may need yaml).
        args = parser.parse_args(argv)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        print(f"{command}: error: {message}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
