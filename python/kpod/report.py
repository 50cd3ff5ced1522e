"""The run report: curriculum plots and the token-weight view in one HTML file.

``write_report`` takes plain data (the per-stage schedule, cluster ids, metrics and an
optional token-weight HTML fragment) so it can be rebuilt from a run directory
without a model. Plots are rendered with matplotlib (Agg) and embedded as PNG.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kpod.schedule import StageResult, budget_never_bound


def stage_table(stages: Sequence[StageResult]) -> str:
    """HTML table of the stages: D(t), H(t), advanced / eligible, whether the budget bound."""
    rows = [
        "<table id='stages'><tr><th>stage</th><th>D(t)</th><th>H(t)</th>"
        "<th>advanced</th><th>eligible</th><th>budget bound</th></tr>"
    ]
    for s in stages:
        rows.append(
            f"<tr><td>{s.stage}</td><td>{s.budget:.1f}</td><td>{s.written:.1f}</td>"
            f"<td>{s.selected.size}</td><td>{s.eligible}</td>"
            f"<td>{'yes' if s.bound else 'no'}</td></tr>"
        )
    rows.append("</table>")
    if budget_never_bound(stages):
        rows.append(
            "<p><b>The budget bound at no stage:</b> every question that could advance did, "
            "so the step difficulties, beta and the clusters did not shape this schedule "
            "(more stages or a larger delta_steps make it budget-driven; docs/training.md).</p>"
        )
    return "\n".join(rows)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def curriculum_figures(stages: Sequence[StageResult], clusters: np.ndarray) -> dict[str, str]:
    """Base64 PNGs: budget vs difficulty, given-steps histograms, selections per cluster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, str] = {}
    if not stages:
        return figs
    t = [s.stage for s in stages]

    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(t, [s.budget for s in stages], "o-", label="budget D(t)")
    ax.plot(t, [s.written for s in stages], "s--", label="written difficulty H(t)")
    ax.set_xlabel("stage t")
    ax.set_ylabel("difficulty")
    ax.legend()
    ax.grid(alpha=0.3)
    figs["Budget D(t) and written difficulty H(t)"] = _png(fig)

    max_given = max(int(s.given_steps.max(initial=0)) for s in stages)
    bins = np.arange(max_given + 2) - 0.5
    cols = min(len(stages), 5)
    rows = -(-len(stages) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.0 * rows), squeeze=False)
    for ax, s in zip(axes.flat, stages, strict=False):
        ax.hist(s.given_steps, bins=bins, color="#4477aa")
        ax.set_title(f"stage {s.stage}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(stages) :]:
        ax.axis("off")
    fig.supxlabel("leading steps given as input")
    fig.supylabel("questions")
    figs["Given steps per question, by stage"] = _png(fig)

    n_clusters = int(clusters.max(initial=-1)) + 1
    if n_clusters > 0:
        counts = np.zeros((len(stages), n_clusters), dtype=np.int64)
        for row, s in enumerate(stages):
            if s.selected.size:
                counts[row] = np.bincount(clusters[s.selected], minlength=n_clusters)
        fig, ax = plt.subplots(figsize=(6, 3.2))
        bottom = np.zeros(len(stages))
        for k in range(n_clusters):
            ax.bar(t, counts[:, k], bottom=bottom, label=f"cluster {k}")
            bottom += counts[:, k]
        ax.set_xlabel("stage t")
        ax.set_ylabel("questions advanced")
        if n_clusters <= 12:
            ax.legend(fontsize=7, ncol=2)
        figs["Questions advanced per stage, by cluster"] = _png(fig)
    return figs


def write_report(
    path: str | Path,
    *,
    title: str,
    metrics: Mapping[str, Any],
    stages: Sequence[StageResult],
    clusters: np.ndarray,
    token_weight_html: str | None = None,
) -> Path:
    """Write a self-contained HTML report and return its path."""
    path = Path(path)
    figs = curriculum_figures(stages, np.asarray(clusters, dtype=np.int64))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto}img{max-width:100%}"
        "td,th{padding:0 .8em;text-align:right}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
        "<h2>Metrics</h2>",
        f"<pre id='metrics'>{html.escape(json.dumps(metrics, indent=2, default=str))}</pre>",
    ]
    if stages:
        parts.append("<h2>Curriculum</h2>")
        parts.append(stage_table(stages))
    if figs:
        for caption, data in figs.items():
            parts.append(
                f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    if token_weight_html:
        parts.append("<h2>Token weights</h2>")
        parts.append(token_weight_html)
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
