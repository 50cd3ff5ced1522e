"""``kpod run CONFIG.yaml``: the whole pipeline (Algorithm 1) with cached steps."""

from __future__ import annotations

import argparse
from typing import Any

from kpod.commands import parse_set


def register(sub: Any) -> None:
    from kpod.pipeline import STEPS

    p = sub.add_parser(
        "run",
        help="run the whole KPOD pipeline from a YAML config (cached, resumable)",
        description="Data -> weighting module -> token weights -> step difficulties -> "
        "clusters -> evaluation before -> progressive training -> evaluation after -> "
        "report. Each step is cached in the run directory and skipped when its inputs "
        "are unchanged; rerunning an interrupted run resumes it.",
    )
    p.add_argument("config", help="run config (YAML), e.g. examples/demo.yaml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=parse_set,
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, dotted, the value read as YAML (e.g. --set "
        "training.num_train_epochs=2)",
    )
    p.add_argument(
        "--force",
        action="append",
        choices=STEPS,
        default=[],
        help="redo this step even if cached (repeatable)",
    )
    p.add_argument(
        "--until",
        choices=STEPS,
        default=None,
        help="stop after this step; stopping at 'clusters' or 'eval_before' prints the "
        "curriculum preview (budget, difficulty, whether the budget binds) without training",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from kpod.pipeline import run

    run(args.config, overrides=dict(args.overrides), force=tuple(args.force), until=args.until)
    return 0
