"""Helpers of the bench scripts that print one row per instance with all three algorithms.

Not part of the kpod package: ``bench_adversarial.py`` and ``bench_objectives.py``
import it from here.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from kpod.bench import ALGORITHMS, time_calls


def algorithm_table_head(lead: Sequence[str]) -> str:
    """Header and alignment rows of a table with the ``lead`` columns, then
    time, evaluations per item and value relative to ``greedy_max`` for each
    of ``kpod.bench.ALGORITHMS`` (the rows :func:`algorithm_cells` makes)."""
    cells = [f"{a}: time | evals / n | value / greedy_max" for a in ALGORITHMS]
    head = "| " + " | ".join([*lead, *cells]) + " |"
    align = "| --- |" + " ---: |" * (len(lead) - 1) + " ---: | ---: | ---: |" * len(cells)
    return head + "\n" + align


def algorithm_cells(select: Callable[..., Any], n: int, repeats: int) -> str:
    """Times ``select(algorithm=...)`` (``kpod.select`` with every other argument
    bound) for each algorithm: one untimed call, then the median of ``repeats``.
    Returns the table cells "time | evals / n | value / greedy_max" in
    ``kpod.bench.ALGORITHMS`` order."""
    cells: dict[str, str] = {}
    ref_value = None
    for alg in ("greedy_max", "threshold", "density"):  # the reference first
        call = functools.partial(select, algorithm=alg)
        call()  # warm-up
        times, s = time_calls(call, repeats)
        if alg == "greedy_max":
            ref_value = s.value
        ms = statistics.median(times) * 1e3
        ratio = s.value / ref_value if ref_value else float("nan")
        cells[alg] = f"{ms:.1f} ms | {s.evaluations / n:.1f} | {ratio:.4f}"
    return " | ".join(cells[a] for a in ALGORITHMS)
