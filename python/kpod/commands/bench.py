"""``kpod bench``: the scheduler benchmark, printing the tables of ``benches/RESULTS.md``.

The default run (n = 1e4..1e6, K = 1000, all three algorithms, a
50-stage curriculum over 1M questions, no peers) takes well under a minute on
a 2-core machine. ``benches/bench_select.py`` is the same code with the full
defaults (n up to 1e7) plus the peer libraries and their cost-handling audit
(``benches/peers.py``, outside the package).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any


def register(subparsers: Any) -> None:
    from kpod import bench

    parser = subparsers.add_parser(
        "bench",
        help="benchmark the native scheduler",
        description=(
            "Time kpod.select (threshold, greedy_max, density) and kpod.Curriculum on random "
            "instances of the KPOD objective, each case in its own process (peak RSS per case), "
            "and print markdown tables. Values are recomputed from the returned indices. "
            "The comparison with apricot-select and submodlib-py is benches/bench_select.py "
            "in the repository."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    bench.add_arguments(parser, full=False)
    parser.add_argument(
        "--output", "-o", default=None, help="also write the markdown tables to this file"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kpod import bench

    command = (
        "kpod " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "kpod bench"
    )
    text = bench.run_from_args(args, command)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return 0
