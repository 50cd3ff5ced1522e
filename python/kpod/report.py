"""The run report: what a person reads at a glance after ``kpod run``, in one HTML file.

From the top: accuracy before and after training on each test set with 95%
bootstrap intervals and the paired difference, the run's identity (student,
config, commit) and step times; the curriculum (stage table and plots); the token
weights (the weighting module's gates, the weights' distribution, a colour scale
and the token-weight view, with a plain sentence when the weights carry no
signal); the raw metrics JSON last, collapsed.

``write_report`` takes plain data (metrics, the per-stage schedule, cluster ids,
token weights) so it can be rebuilt from a run directory without a model; given
``run_dir`` it also reads the per-question predictions (for the paired
differences) and the weighting module's ``metrics.json`` (gates). Plots are drawn
with matplotlib (Agg, constrained layout) and embedded as PNG; ``text_overlaps``
checks a figure's text with matplotlib's own layout engine.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kpod.schedule import StageResult, budget_never_bound

# Rationale-token weights "carry no signal" when the middle 80% of them (10th to 90th
# percentile) lie within this width: the weighted loss is then plain CoT scaled by a
# constant, and the view's shading differences are invisible (docs/training.md).
NO_SIGNAL_SPREAD = 0.05

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "line-height:1.4}"
    "pre{background:#f6f6f6;padding:1em;overflow:auto}img{max-width:100%}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "td,th{padding:.15em .8em;text-align:right;border-bottom:1px solid #e4e4e4}"
    "th:first-child,td:first-child{text-align:left}"
    "figure{margin:1em 0}figcaption{color:#555;font-size:.9em}"
    ".note{background:#fff6dd;border-left:4px solid #e0a800;padding:.4em .8em}"
    ".warn{background:#fde8e8;border-left:4px solid #d62728;padding:.4em .8em}"
    ".scale{display:inline-block;width:240px;height:14px;vertical-align:middle;"
    "border:1px solid #aaa}"
    ".scale-labels{display:flex;justify-content:space-between;width:242px;font-size:.8em}"
    "details{margin-top:2em}"
    ".rationale{border-bottom:1px solid #ddd;padding:.5em 0}"
    ".question{color:#555;font-size:.9em;margin-bottom:.3em}"
    ".tokens{font-family:monospace;white-space:pre-wrap;line-height:1.8;margin:0}"
    ".step-break{color:#aaa}"
)


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


def figure_png(fig: Any) -> str:
    """Base64 PNG of a matplotlib figure (closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


_png = figure_png  # the name earlier versions used


def text_overlaps(fig: Any) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty text artists of ``fig`` whose drawn boxes overlap.

    Uses matplotlib's own renderer (the layout the PNG gets): tick labels, axis
    labels, titles, super-labels and legend texts. Empty means every text can be read.
    """
    from matplotlib.text import Text

    # Only the texts a draw actually renders (a locator's ticks outside the view
    # limits exist as artists but are not drawn).
    drawn: list[Any] = []
    original = Text.draw

    def recording_draw(self: Any, renderer: Any) -> None:
        drawn.append(self)
        original(self, renderer)

    Text.draw = recording_draw  # type: ignore[method-assign]
    try:
        fig.canvas.draw()
    finally:
        Text.draw = original  # type: ignore[method-assign]
    renderer = fig.canvas.get_renderer()
    boxes = []
    for t in dict.fromkeys(drawn):
        if not t.get_visible() or not t.get_text().strip():
            continue
        bb = t.get_window_extent(renderer)
        if bb.width <= 0 or bb.height <= 0:
            continue
        boxes.append((t.get_text(), bb))
    out = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            a, b = boxes[i][1], boxes[j][1]
            # Strict overlap by more than half a pixel: touching boxes do not count.
            w = min(a.x1, b.x1) - max(a.x0, b.x0)
            h = min(a.y1, b.y1) - max(a.y0, b.y0)
            if w > 0.5 and h > 0.5:
                out.append((boxes[i][0], boxes[j][0]))
    return out


def _stage_axis(ax: Any, stages: Sequence[int]) -> None:
    """Integer ticks on a stage axis (every stage up to 20, else integer locator)."""
    from matplotlib.ticker import MaxNLocator

    if len(stages) <= 20:
        ax.set_xticks(list(stages))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def build_figures(
    stages: Sequence[StageResult],
    clusters: np.ndarray,
    token_weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """matplotlib Figures by caption: budget vs difficulty, given-steps histograms,
    selections per cluster and (with ``token_weights``) the weights' distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figs: dict[str, Any] = {}
    clusters = np.asarray(clusters, dtype=np.int64)
    if stages:
        t = [int(s.stage) for s in stages]
        fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
        ax.plot(t, [float(s.budget) for s in stages], "o-", label="budget D(t)")
        ax.plot(t, [float(s.written) for s in stages], "s--", label="written difficulty H(t)")
        _stage_axis(ax, t)
        ax.set_xlabel("stage t")
        ax.set_ylabel("difficulty")
        ax.legend()
        ax.grid(alpha=0.3)
        figs["Budget D(t) and written difficulty H(t)"] = fig

        max_given = max(int(np.asarray(s.given_steps).max(initial=0)) for s in stages)
        bins = np.arange(max_given + 2) - 0.5
        cols = min(len(stages), 5)
        rows = -(-len(stages) // cols)
        fig, axes = plt.subplots(
            rows,
            cols,
            figsize=(2.4 * cols + 0.6, 2.0 * rows + 0.6),
            squeeze=False,
            layout="constrained",
        )
        for ax, s in zip(axes.flat, stages, strict=False):
            ax.hist(np.asarray(s.given_steps), bins=bins, color="#4477aa")
            ax.set_xlim(-0.5, max_given + 0.5)
            ax.set_title(f"stage {s.stage}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        for ax in list(axes.flat)[len(stages) :]:
            ax.axis("off")
        fig.supxlabel("leading steps given as input", fontsize=10)
        fig.supylabel("questions", fontsize=10)
        figs["Given steps per question, by stage"] = fig

        n_clusters = int(clusters.max(initial=-1)) + 1
        if n_clusters > 0:
            counts = np.zeros((len(stages), n_clusters), dtype=np.int64)
            for row, s in enumerate(stages):
                sel = np.asarray(s.selected, dtype=np.int64)
                if sel.size:
                    counts[row] = np.bincount(clusters[sel], minlength=n_clusters)
            fig, ax = plt.subplots(figsize=(6.8, 3.2), layout="constrained")
            bottom = np.zeros(len(stages))
            for k in range(n_clusters):
                ax.bar(t, counts[:, k], bottom=bottom, label=f"cluster {k}")
                bottom += counts[:, k]
            _stage_axis(ax, t)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("stage t")
            ax.set_ylabel("questions advanced")
            if n_clusters <= 12:
                fig.legend(fontsize=7, loc="outside right upper")
            figs["Questions advanced per stage, by cluster"] = fig

    if token_weights is not None and np.asarray(token_weights).size:
        w = np.asarray(token_weights, dtype=np.float64)
        fig, ax = plt.subplots(figsize=(6, 2.8), layout="constrained")
        ax.hist(w, bins=np.linspace(0.0, 1.0, 51).tolist(), color="#d62728", alpha=0.8)
        ax.axvline(float(w.mean()), color="k", lw=1, ls="--", label=f"mean {w.mean():.3f}")
        ax.set_xlim(0, 1)
        ax.set_xlabel("token weight w (rationale tokens)")
        ax.set_ylabel("tokens")
        ax.legend(fontsize=8, loc="upper left")
        figs["Distribution of the rationale-token weights"] = fig
    return figs


def curriculum_figures(stages: Sequence[StageResult], clusters: np.ndarray) -> dict[str, str]:
    """Base64 PNGs: budget vs difficulty, given-steps histograms, selections per cluster."""
    return {k: figure_png(f) for k, f in build_figures(stages, clusters).items()}


# ----------------------------------------------------------------- the summary
def _fmt_acc(m: Mapping[str, Any]) -> str:
    return (
        f"{100 * m['accuracy']:.1f}% [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}] "
        f"({m['correct']}/{m['n']})"
    )


def _correctness(path: Path) -> tuple[list[str], np.ndarray] | None:
    if not path.is_file():
        return None
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [str(r.get("id", i)) for i, r in enumerate(rows)], np.array(
        [bool(r["correct"]) for r in rows]
    )


def paired_differences(run_dir: str | Path, names: Iterable[str]) -> dict[str, tuple[float, ...]]:
    """after - before per test set, paired per question (mean, low, high), from the
    predictions of ``eval_before`` and ``eval_after`` (only where both cover the same ids)."""
    from kpod.stats import paired_difference

    run_dir = Path(run_dir)
    out: dict[str, tuple[float, ...]] = {}
    for name in names:
        b = _correctness(run_dir / "eval_before" / f"predictions-{name}.jsonl")
        a = _correctness(run_dir / "eval_after" / f"predictions-{name}.jsonl")
        if a is None or b is None or a[0] != b[0]:
            continue
        out[name] = paired_difference(a[1], b[1])
    return out


def accuracy_table(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    differences: Mapping[str, Sequence[float]] | None = None,
) -> str:
    """HTML table: per test set, accuracy before and after with 95% intervals, and the
    paired difference after - before (percentage points)."""
    differences = differences or {}
    head = (
        "<table id='accuracy'><tr><th>test set</th><th>questions</th>"
        "<th>before training</th><th>after training</th>"
        "<th>after &minus; before (paired)</th></tr>"
    )
    rows = [head]
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name) or {}, after.get(name) or {}
        n = a.get("n", b.get("n", ""))
        d = differences.get(name)
        diff = "" if d is None else f"{100 * d[0]:+.1f} [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}] pts"
        rows.append(
            f"<tr class='set'><th>{html.escape(name)}</th><td>{n}</td>"
            f"<td>{_fmt_acc(b) if b else 'not run'}</td>"
            f"<td>{_fmt_acc(a) if a else 'not run'}</td><td>{diff}</td></tr>"
        )
    rows.append("</table>")
    rows.append(
        "<p class='legend'>Accuracy with a 95% bootstrap interval (correct / questions); the "
        "difference resamples the questions in pairs, so it reflects only the questions "
        "whose outcome changed.</p>"
    )
    return "\n".join(rows)


def source_commit(path: str | Path | None = None) -> str | None:
    """The git commit of the kpod checkout at ``path`` (default: this package's), with
    ``-dirty`` when tracked files differ from it; ``None`` outside a git checkout."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        top, head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--show-toplevel", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
        if path is None and not (Path(top) / "python" / "kpod" / "report.py").is_file():
            return None  # installed kpod inside some other repository: not kpod's commit
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return head + ("-dirty" if dirty else "") if head else None


def _info_table(metrics: Mapping[str, Any]) -> str:
    rows = [("student", metrics.get("student")), ("config", metrics.get("config"))]
    rows.append(("commit", metrics.get("commit") or "unknown (not a git checkout)"))
    if metrics.get("run_dir"):
        rows.append(("run directory", metrics.get("run_dir")))
    out = ["<table id='run-info'>"]
    out += [
        f"<tr class='info'><th>{k}</th><td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in rows
        if v is not None
    ]
    out.append("</table>")
    return "\n".join(out)


def step_times_table(seconds: Mapping[str, Any]) -> str:
    """HTML table of each step's time (as recorded when the step last ran)."""
    if not seconds:
        return ""
    total = sum(float(v) for v in seconds.values())
    out = ["<table id='step-times'><tr><th>step</th><th>seconds</th><th>share</th></tr>"]
    for step, s in seconds.items():
        share = f"{100 * float(s) / total:.0f}%" if total > 0 else ""
        out.append(
            f"<tr class='step'><th>{html.escape(str(step))}</th><td>{float(s):.1f}</td>"
            f"<td>{share}</td></tr>"
        )
    out.append(f"<tr class='total'><th>total</th><td>{total:.1f}</td><td></td></tr>")
    out.append("</table>")
    out.append(
        "<p class='legend'>A cached step shows the time it took when it ran; the report "
        "step itself is not counted.</p>"
    )
    return "\n".join(out)


# ----------------------------------------------------------------- token weights
def rationale_weights(examples: Iterable[Mapping[str, Any]]) -> np.ndarray:
    """The weights of every rationale token (``step_ids >= 0``) of scored examples."""
    parts = []
    for row in examples:
        w = np.asarray(row["token_weights"], dtype=np.float64)
        s = np.asarray(row["step_ids"], dtype=np.int64)
        parts.append(w[s >= 0])
    return np.concatenate(parts) if parts else np.zeros(0)


def weight_summary(weights: np.ndarray) -> dict[str, float]:
    """Mean, percentiles and the 10-90 spread of token weights."""
    w = np.asarray(weights, dtype=np.float64)
    p10, p50, p90 = (float(x) for x in np.percentile(w, [10, 50, 90]))
    return {
        "tokens": float(w.size),
        "mean": float(w.mean()),
        "min": float(w.min()),
        "p10": p10,
        "median": p50,
        "p90": p90,
        "max": float(w.max()),
        "spread": p90 - p10,
    }


def no_signal_sentence(weights: np.ndarray, spread: float = NO_SIGNAL_SPREAD) -> str | None:
    """A plain sentence when the weights are near-uniform (10-90 spread < ``spread``)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0:
        return None
    s = weight_summary(w)
    if s["spread"] >= spread:
        return None
    return (
        f"The token weights carry no signal: 80% of the {w.size} rationale tokens have "
        f"weights between {s['p10']:.3f} and {s['p90']:.3f} (spread {s['spread']:.3f}, "
        f"below {spread}). The weighting module treats every token alike, so the weighted "
        f"loss is plain CoT scaled by about {s['mean']:.2f}, and the even shading below "
        "means 'no keypoints found', not 'every token is a keypoint'."
    )


def _numbers(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if k == "warnings":
            continue
        if isinstance(v, Mapping):
            out += _numbers(v, f"{prefix}{k}.")
        elif isinstance(v, bool | int | float | str) or v is None:
            out.append((f"{prefix}{k}", v))
        elif isinstance(v, list | tuple) and all(
            isinstance(x, int | float) or x is None for x in v
        ):
            out.append((f"{prefix}{k}", list(v)))
    return out


def _find(d: Any, key: str) -> Any:
    if isinstance(d, Mapping):
        if key in d:
            return d[key]
        for v in d.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def load_gates(path: str | Path) -> tuple[dict[str, Any], list[str]] | None:
    """(named numbers, warnings) from a weighting module's ``metrics.json``.

    Looks for a ``gates`` mapping anywhere in the file; ``warnings`` (a list of
    strings) may sit inside it or at the top. ``None`` when the file or the key is absent.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    gates = _find(data, "gates")
    if not isinstance(gates, Mapping):
        return None
    warnings = gates.get("warnings")
    if warnings is None and isinstance(data, Mapping):
        warnings = data.get("warnings")
    if isinstance(warnings, str):
        warnings = [warnings]
    return dict(_numbers(gates)), [str(x) for x in (warnings or [])]


def _gate_cell(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return f"{v:.4g}" if math.isfinite(float(v)) else str(v)
    if isinstance(v, list):
        return ", ".join(_gate_cell(x) for x in v)
    return html.escape(str(v))


def gates_html(gates: Mapping[str, Any], warnings: Sequence[str] = ()) -> str:
    """The weighting module's gates (named numbers) and its warnings, as HTML."""
    out = ["<table id='gates'><tr><th>gate</th><th>value</th></tr>"]
    for name, v in gates.items():
        cell = _gate_cell(v)
        out.append(
            f"<tr class='gate'><th>{html.escape(name.replace('_', ' '))}</th><td>{cell}</td></tr>"
        )
    out.append("</table>")
    out += [f"<p class='warn'>{html.escape(w)}</p>" for w in warnings]
    return "\n".join(out)


def colour_scale_html(weights: np.ndarray | None = None) -> str:
    """The token-weight view's colour scale (white = 0 to full red = 1), with the
    weights' 10th-90th percentile range marked when ``weights`` is given."""
    from kpod.weighting.view import COLOR

    r, g, b = COLOR
    band = ""
    if weights is not None and np.asarray(weights).size:
        s = weight_summary(np.asarray(weights))
        left, width = 100 * s["p10"], max(100 * (s["p90"] - s["p10"]), 0.8)
        band = (
            f"<span style='position:absolute;left:{left:.1f}%;width:{width:.1f}%;top:-3px;"
            "bottom:-3px;border:2px solid #000' title='10th-90th percentile of the weights'>"
            "</span>"
        )
    return (
        "<div id='weight-scale'><p>Colour scale: token weight w, the probability that the "
        "token is kept (boxed: where the middle 80% of this run's weights lie).</p>"
        f"<span class='scale' style='position:relative;background:linear-gradient(to right,"
        f"rgba({r},{g},{b},0),rgba({r},{g},{b},1))'>{band}</span>"
        "<div class='scale-labels'><span>0</span><span>0.25</span><span>0.5</span>"
        "<span>0.75</span><span>1</span></div></div>"
    )


# ----------------------------------------------------------------- the page
def _figure_html(caption: str, data: str) -> str:
    e = html.escape(caption)
    return (
        f"<figure><img alt='{e}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{e}</figcaption></figure>"
    )


def write_report(
    path: str | Path,
    *,
    title: str,
    metrics: Mapping[str, Any],
    stages: Sequence[StageResult],
    clusters: np.ndarray,
    token_weight_html: str | None = None,
    token_weights: np.ndarray | None = None,
    run_dir: str | Path | None = None,
    gates: tuple[Mapping[str, Any], Sequence[str]] | None = None,
) -> Path:
    """Write a self-contained HTML report and return its path.

    ``metrics``: ``student``, ``config``, ``commit``, ``before`` / ``after``
    (per test set: ``n``, ``correct``, ``accuracy``, ``ci_low``, ``ci_high``) and
    ``seconds`` per step. ``token_weights``: every rationale token's weight
    (distribution, colour-scale band, the no-signal sentence). ``run_dir``: read
    the predictions for the paired differences and, unless ``gates`` is given, the
    weighting module's gates from ``weighting/module/metrics.json``.
    """
    path = Path(path)
    before = metrics.get("before") or {}
    after = metrics.get("after") or {}
    diffs = {} if run_dir is None else paired_differences(run_dir, set(before) | set(after))
    if gates is None and run_dir is not None:
        gates = load_gates(Path(run_dir) / "weighting" / "module" / "metrics.json")
    figs = build_figures(stages, np.asarray(clusters, dtype=np.int64), token_weights)
    weight_fig = figs.pop("Distribution of the rationale-token weights", None)
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{STYLE}</style>",
        f"</head><body><h1>{e(title)}</h1>",
        "<h2 id='summary'>Accuracy</h2>",
        accuracy_table(before, after, diffs),
        _info_table(metrics),
    ]
    times = step_times_table(metrics.get("seconds") or {})
    if times:
        parts += ["<h2>Step times</h2>", times]
    if stages:
        parts += ["<h2>Curriculum</h2>", stage_table(stages)]
    parts += [_figure_html(caption, figure_png(fig)) for caption, fig in figs.items()]
    has_weights = token_weights is not None and np.asarray(token_weights).size > 0
    if token_weight_html or has_weights or gates:
        parts.append("<h2>Token weights</h2>")
        if gates:
            parts += ["<h3>Weighting module gates</h3>", gates_html(gates[0], gates[1])]
        if has_weights:
            assert token_weights is not None
            s = weight_summary(token_weights)
            parts.append(
                f"<p id='weight-summary'>{int(s['tokens'])} rationale tokens: mean "
                f"{s['mean']:.3f}, 10th-90th percentile {s['p10']:.3f}-{s['p90']:.3f}, "
                f"range {s['min']:.3f}-{s['max']:.3f}.</p>"
            )
            sentence = no_signal_sentence(token_weights)
            if sentence:
                parts.append(f"<p class='note' id='no-signal'>{e(sentence)}</p>")
        if weight_fig is not None:
            parts.append(
                _figure_html("Distribution of the rationale-token weights", figure_png(weight_fig))
            )
        if token_weight_html:
            parts.append(colour_scale_html(token_weights if has_weights else None))
            parts.append(token_weight_html)
    parts += [
        "<details id='raw-metrics'><summary>Raw metrics (metrics.json)</summary>",
        f"<pre id='metrics'>{e(json.dumps(metrics, indent=2, default=str))}</pre></details>",
        "</body></html>",
    ]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
