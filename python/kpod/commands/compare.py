"""``kpod compare RUN...``: several runs side by side on the same test sets."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="accuracy, paired differences and schedules of several runs (after an ablation grid)",
        description=(
            "One table over several runs on the same test sets: accuracy with 95%% bootstrap "
            "intervals, paired bootstrap differences against a baseline run of the same seed on "
            "the same questions, the same pooled over seeds for runs whose configs differ only "
            "in seed, and the schedules (questions advanced / eligible per stage, and how many "
            "questions' given steps differ from the baseline's). A RUN is a `kpod run` "
            "directory, an archived run record (docs/reproduction/delta<N>/<variant>-s<seed>.json) "
            "or a folder of such records."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or run records")
    p.add_argument(
        "--baseline",
        action="append",
        default=None,
        help="the run (group label, run name or path) differences are taken against "
        "(default: the first run's group); repeat it for difference columns against "
        "several baselines, e.g. --baseline cot --baseline kpod",
    )
    p.add_argument(
        "--scheme",
        default="pairs",
        choices=["pairs", "questions"],
        help="how pooled intervals resample: question-seed pairs as independent units, or "
        "questions with every seed of a drawn question kept (seeds narrow the interval only "
        "as far as they disagree; docs/report.md)",
    )
    p.add_argument(
        "--factorial",
        nargs=4,
        default=None,
        metavar=("NEITHER", "WEIGHTS", "PROGRESSION", "BOTH"),
        help="the 2x2 token weights x progression: the runs with neither (plain CoT), "
        "weights only (w.o.-prog), progression only (w.o.-sig) and both (KPOD); prints "
        "both main effects and their interaction, paired by seed and question, with "
        "intervals that resample questions",
    )
    p.add_argument(
        "--before",
        action="store_true",
        help="also compare each run directory's evaluation before training (pretrained student)",
    )
    p.add_argument(
        "--sets",
        nargs="+",
        default=None,
        metavar="NAME",
        help="test sets, in this order (default: every set, in the order first seen)",
    )
    p.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="KEY=TEXT",
        help="display name of a test set or of the baseline (repeatable), e.g. "
        "--name asdiv='ASDiv (OOD)'",
    )
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="DOTTED.KEY",
        help="config key to ignore when grouping runs over seeds (besides every 'seed', "
        "run_dir and evaluation.before); repeatable",
    )
    p.add_argument("--html", default=None, metavar="PATH", help="also write an HTML page")
    p.add_argument("--out", default=None, metavar="PATH", help="write the Markdown table here")
    p.set_defaults(func=_run)


def _names(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        if not sep:
            raise ValueError(f"--name takes KEY=TEXT, got {spec!r}")
        out[key] = text
    return out


def _run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from kpod.compare import (
        FACTORIAL_CELLS,
        compare,
        effects_markdown,
        factorial,
        html_page,
        load_runs,
        markdown,
        multi_baseline_markdown,
        stage_markdown,
    )

    runs = load_runs(args.runs, before=args.before)
    baselines = args.baseline or [None]
    cmps = [
        compare(runs, baseline=b, sets=args.sets, ignore=args.ignore, scheme=args.scheme)
        for b in baselines
    ]
    cmp = cmps[0]
    names = _names(args.name)
    base_names = {c.baseline: names.get(c.baseline, c.baseline) for c in cmps}
    baseline_name = base_names[cmp.baseline] if cmp.baseline in names else None
    for c in cmps:
        names.pop(c.baseline, None)
    if len(cmps) == 1:
        text = markdown(cmp, set_names=names, baseline_name=baseline_name)
    else:
        stages = stage_markdown(cmp)
        text = (stages + "\n" if stages else "") + multi_baseline_markdown(
            [(base_names[c.baseline], c) for c in cmps], set_names=names
        )
    notes = list(dict.fromkeys(w for c in cmps for w in c.warnings))
    if args.factorial:
        effects, fnotes = factorial(
            runs,
            neither=args.factorial[0],
            weights=args.factorial[1],
            progression=args.factorial[2],
            both=args.factorial[3],
            sets=cmp.sets,
            ignore=args.ignore,
        )
        cell_names = dict(zip(FACTORIAL_CELLS, args.factorial, strict=True))
        table = effects_markdown(effects, set_names=names, cell_names=cell_names)
        text += (
            "\n2x2 effects (token weights x progression; per-question contrasts paired by seed "
            "and question, pooled over seeds, questions resampled):\n\n" + table
        )
        notes += fnotes
    print(text, end="")
    for warning in notes:
        print(f"kpod compare: note: {warning}", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    if args.html:
        page = html_page(
            cmp,
            set_names=names,
            baseline_name=baseline_name,
            sources=[r.source for r in runs],
        )
        Path(args.html).write_text(page, encoding="utf-8")
        print(f"kpod compare: wrote {args.html}")
    return 0
