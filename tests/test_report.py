"""report.html reads at a glance: accuracy first, integer stage ticks, figures whose
texts do not overlap (matplotlib's own layout), the weights' scale and gates, and a
plain sentence when the weights carry no signal. No torch needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from kpod.report import (
    NO_SIGNAL_SPREAD,
    build_figures,
    gates_html,
    load_gates,
    no_signal_sentence,
    rationale_weights,
    text_overlaps,
    write_report,
)
from kpod.schedule import StageResult


def _stages(n_stages: int, n_questions: int = 40, seed: int = 0) -> list[StageResult]:
    rng = np.random.default_rng(seed)
    given = rng.integers(1, 7, n_questions)
    out = []
    for t in range(1, n_stages + 1):
        eligible = int(np.count_nonzero(given))
        sel = np.flatnonzero(given)[: max(1, eligible // 2)]
        given = given.copy()
        given[sel] -= 1
        out.append(
            StageResult(
                stage=t,
                selected=sel,
                given_steps=given,
                budget_increase=10.0,
                difficulty_added=9.0,
                value=5.0,
                evaluations=3,
                budget=1000.0 * t,
                written=900.0 * t,
                skipped=False,
                eligible=eligible,
                bound=True,
            )
        )
    return out


METRICS = {
    "config": "examples/demo.yaml",
    "student": "smollm2-135m",
    "commit": "abc123",
    "before": {"gsm8k": {"n": 4, "correct": 1, "accuracy": 0.25, "ci_low": 0.0, "ci_high": 0.75}},
    "after": {"gsm8k": {"n": 4, "correct": 3, "accuracy": 0.75, "ci_low": 0.25, "ci_high": 1.0}},
    "seconds": {"data": 1.0, "train": 3.0},
}


@pytest.mark.parametrize("n_stages", [1, 2, 3, 7, 12, 25])
def test_figures_have_integer_stage_ticks_and_no_overlapping_text(n_stages: int) -> None:
    stages = _stages(n_stages)
    clusters = np.arange(40) % 5
    import matplotlib.pyplot as plt

    figs = build_figures(stages, clusters, np.random.default_rng(0).random(500))
    try:
        assert len(figs) == 4
        for caption, fig in figs.items():
            assert text_overlaps(fig) == [], caption
        for caption in (
            "Budget D(t) and written difficulty H(t)",
            "Questions advanced per stage, by cluster",
        ):
            ax = figs[caption].axes[0]
            ticks = [x for x in ax.get_xticks() if ax.get_xlim()[0] <= x <= ax.get_xlim()[1]]
            assert ticks and all(float(x).is_integer() for x in ticks), (caption, ticks)
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_overlap_check_sees_a_label_drawn_over_tick_labels() -> None:
    import matplotlib.pyplot as plt

    # The layout issue 26 reported: the given-steps histograms' super x-label
    # without a layout engine, drawn over the bottom row's tick labels.
    fig, axes = plt.subplots(1, 2, figsize=(4.8, 2.0))
    for ax in axes:
        ax.hist(np.arange(5))
        ax.tick_params(labelsize=7)
    fig.supxlabel("leading steps given as input")
    fig.supylabel("questions")
    assert any("leading steps" in text for pair in text_overlaps(fig) for text in pair)
    plt.close(fig)


def test_no_signal_sentence_only_for_near_uniform_weights() -> None:
    rng = np.random.default_rng(0)
    flat = 0.9 + 0.01 * rng.standard_normal(1000)  # the demo's weights: near their 0.9 start
    msg = no_signal_sentence(flat)
    assert msg is not None and "no signal" in msg
    spread = rng.uniform(0.1, 0.9, 1000)
    assert no_signal_sentence(spread) is None
    # The criterion is the 10th-90th percentile spread against NO_SIGNAL_SPREAD.
    just_below = np.linspace(0.5, 0.5 + NO_SIGNAL_SPREAD * 0.99 / 0.8, 1001)
    assert no_signal_sentence(just_below) is not None
    assert no_signal_sentence(np.linspace(0.3, 0.7, 1001)) is None


def test_rationale_weights_take_only_rationale_tokens() -> None:
    rows = [
        {"token_weights": [1.0, 0.2, 0.4, 1.0], "step_ids": [-1, 0, 1, -2]},
        {"token_weights": [1.0, 0.7], "step_ids": [-1, 0]},
    ]
    assert rationale_weights(rows).tolist() == [0.2, 0.4, 0.7]


def test_gates_are_found_and_warnings_kept(tmp_path: Path) -> None:
    p = tmp_path / "metrics.json"
    p.write_text(
        json.dumps(
            {
                "loss": 1.2,
                "gates": {
                    "mean_weight": 0.91,
                    "keep_ratio": 0.88,
                    "informativeness_gap": 0.002,
                    "passed": False,
                    "gap_ratio": None,
                    "control_class_margins": [0.1, None],
                    "early_stopping": {"best_step": 4},
                },
                "warnings": ["informativeness gap 0.002 < 0.05: the weights carry no signal"],
            }
        )
    )
    gates = load_gates(p)
    assert gates is not None
    numbers, warnings = gates
    assert numbers["keep_ratio"] == 0.88 and numbers["passed"] is False
    assert numbers["gap_ratio"] is None and numbers["early_stopping.best_step"] == 4
    page = gates_html(numbers, warnings)
    assert "informativeness gap</th><td>0.002" in page and "0.1, n/a" in page
    assert warnings == ["informativeness gap 0.002 < 0.05: the weights carry no signal"]
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"eval": {"gates": {"a": 1, "warnings": "w"}}}))
    assert load_gates(nested) == ({"a": 1}, ["w"])
    assert load_gates(tmp_path / "absent.json") is None


def _write_predictions(run: Path, step: str, bits: str) -> None:
    (run / step).mkdir(parents=True)
    lines = [json.dumps({"id": f"q{i}", "correct": b == "1"}) for i, b in enumerate(bits)]
    (run / step / "predictions-gsm8k.jsonl").write_text("\n".join(lines) + "\n")


def test_report_puts_accuracy_first_and_raw_json_last(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_predictions(run, "eval_before", "1000")
    _write_predictions(run, "eval_after", "1110")
    module = run / "weighting" / "module"
    module.mkdir(parents=True)
    (module / "metrics.json").write_text(
        json.dumps({"gates": {"mean_weight": 0.9, "keep_ratio": 0.95}, "warnings": ["flat"]})
    )
    weights = 0.9 + 0.001 * np.random.default_rng(0).standard_normal(300)
    out = write_report(
        run / "report.html",
        title="kpod run: t",
        metrics=METRICS,
        stages=_stages(3),
        clusters=np.arange(40) % 3,
        token_weight_html="<div class='kpod-token-weights'><span class='tok'>x</span></div>",
        token_weights=weights,
        run_dir=run,
    )
    page = out.read_text()
    order = [
        "id='accuracy'",
        "id='run-info'",
        "id='step-times'",
        "id='stages'",
        "Budget D(t)",
        "id='gates'",
        "id='no-signal'",
        "Distribution of the rationale-token weights",
        "id='weight-scale'",
        "kpod-token-weights",
        "<details id='raw-metrics'>",
        "id='metrics'",
    ]
    positions = [page.index(x) for x in order]
    assert positions == sorted(positions), list(zip(order, positions, strict=True))
    acc = page[page.index("id='accuracy'") : page.index("</table>", page.index("id='accuracy'"))]
    assert "25.0% [0.0, 75.0] (1/4)" in acc and "75.0% [25.0, 100.0] (3/4)" in acc
    assert re.search(r"\+50\.0 \[\+0\.0, \+100\.0\] pts", acc), acc  # 2 of 4 questions gained
    assert "abc123" in page and "examples/demo.yaml" in page and "smollm2-135m" in page
    assert "keep ratio" in page and "<p class='warn'>flat</p>" in page
    assert page.count("<figure>") == 4


def test_report_without_weights_or_stages_still_leads_with_accuracy(tmp_path: Path) -> None:
    out = write_report(
        tmp_path / "r.html", title="t", metrics=METRICS, stages=[], clusters=np.zeros(0)
    )
    page = out.read_text()
    assert page.index("id='accuracy'") < page.index("id='metrics'")
    assert "Token weights" not in page and "<figure>" not in page


def test_source_commit_names_the_checkout_or_nothing(tmp_path: Path) -> None:
    import shutil

    from kpod.report import source_commit

    assert source_commit(tmp_path) is None  # not a git checkout
    if shutil.which("git") is None or not (Path(__file__).parents[1] / ".git").exists():
        pytest.skip("not a git checkout of kpod")
    commit = source_commit()
    assert commit is not None and re.fullmatch(r"[0-9a-f]{12}(-dirty)?", commit)
