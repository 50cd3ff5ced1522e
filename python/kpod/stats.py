"""Bootstrap statistics shared by evaluation, the run report, ``kpod compare`` and the
reproduction scripts: one implementation, so every table of kpod computes its
intervals the same way.

numpy only (``import kpod.stats`` needs no training stack).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_interval", "detectable_difference", "paired_difference", "question_bootstrap"]


def bootstrap_interval(
    correct: Sequence[bool] | Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``correct`` (empty input: ``(nan, nan)``).

    ``correct`` may be booleans (accuracy) or any numbers (e.g. per-question
    differences, see :func:`paired_difference`).
    """
    x = np.asarray(correct, dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 256):  # bounded memory for large test sets
        stop = min(start + 256, n_resamples)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_difference(
    a: Sequence[bool] | Sequence[float] | np.ndarray,
    b: Sequence[bool] | Sequence[float] | np.ndarray | None = None,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``a - b`` with a percentile bootstrap interval, resampling the pairs.

    ``a[i]`` and ``b[i]`` are the same question (and seed) under two runs, so the
    interval reflects only the per-question disagreements, not each run's own
    spread. With ``b`` omitted, ``a`` already holds the differences (pooling:
    concatenate the per-question differences of several seeds). Empty input:
    ``(nan, nan, nan)``.
    """
    x = np.asarray(a, dtype=np.float64)
    if b is not None:
        y = np.asarray(b, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
        x = x - y
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    lo, hi = bootstrap_interval(x, n_resamples=n_resamples, level=level, seed=seed)
    return float(x.mean()), lo, hi


def question_bootstrap(
    values: Sequence[Sequence[float]] | np.ndarray,
    *,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of a (runs x questions) matrix with a bootstrap interval that resamples questions.

    Row ``s`` holds one seed's per-question values (correctness, or a paired
    difference of two runs of that seed), column ``q`` the same question in every
    row. A resample draws questions with replacement and keeps every seed of a
    drawn question, so a question that is easy (or that two variants disagree on)
    under every seed counts as one unit, not as independent ones: pooling seeds
    then narrows the interval only by as much as the seeds disagree. Because every
    column holds the same number of rows, this equals the percentile bootstrap of
    the per-question means over seeds (:func:`bootstrap_interval`), which is how it
    is computed. Empty input: ``(nan, nan, nan)``.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected a (runs x questions) matrix, got shape {x.shape}")
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    per_question = x.mean(axis=0)
    lo, hi = bootstrap_interval(per_question, n_resamples=n_resamples, level=level, seed=seed)
    return float(per_question.mean()), lo, hi


# z quantiles of the normal: two-sided 95% and one-sided 80% (power).
_Z_975 = 1.959963984540054
_Z_80 = 0.8416212335729143


def detectable_difference(low: float, high: float) -> tuple[float, float]:
    """(half-width, 80%-power difference) of a 95% interval ``[low, high]``.

    The half-width is the smallest observed difference whose interval would
    exclude 0. A true difference must be larger to be detected most of the time:
    with a normal sampling distribution, the one detected with 80% probability
    is (1.96 + 0.84) / 1.96 = 1.43 times the half-width.
    """
    half = (high - low) / 2
    return half, half * (_Z_975 + _Z_80) / _Z_975
