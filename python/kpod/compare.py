"""Several runs side by side on the same test sets (``kpod compare``).

A *run* is a ``kpod run`` directory (its ``eval_after`` predictions, the effective
config in ``metrics.json``, the train step's time and ``kpod_stages.jsonl``) or an
archived run record (``docs/reproduction/delta<N>/<variant>-s<seed>.json``, written by
``scripts/reproduce_svamp.py``: question ids, per-question correctness, config,
stage summary). :func:`compare` gives, for every run and for every group of runs
that differ only in seed:

* accuracy on each test set with a 95% bootstrap interval
  (:func:`kpod.stats.bootstrap_interval`, 1000 resamples);
* the paired bootstrap difference against a baseline run of the same seed on the
  same questions (:func:`kpod.stats.paired_difference`, 2000 resamples). Pooled
  over seeds, the accuracies concatenate questions x seeds and the differences
  are paired per question and seed;
* the schedule: questions advanced / eligible at each curriculum stage, and,
  where both runs logged every question's given steps, how many questions'
  given-step counts differ from the baseline's at each stage.

:func:`markdown` and :func:`html_page` render the result; the tables of
docs/REPRODUCTION.md are :func:`markdown` of the archive.

Pooling over seeds resamples, by default (``scheme="pairs"``), question-seed pairs
as independent units (the tables of docs/REPRODUCTION.md's settings 1 and 2). With
``scheme="questions"`` it resamples questions and keeps every seed of a drawn
question (:func:`kpod.stats.question_bootstrap`): a question answered alike under
every seed is one unit, so seeds narrow the interval only as far as they disagree.
:func:`factorial` gives the main effects and the interaction of a 2x2 design
(token weights x progression) the same way, and :func:`power` the smallest
difference an interval could detect.

Runs are grouped by their config with every ``seed`` key, ``run_dir`` and
``evaluation.before`` removed (plus any ``ignore`` keys), and, for archived records,
by their variant name. numpy only, plus PyYAML for run directories whose
``metrics.json`` does not hold the config.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kpod.stats import bootstrap_interval, paired_difference, question_bootstrap

__all__ = [
    "Comparison",
    "Effect",
    "GroupRow",
    "RunResult",
    "RunRow",
    "compare",
    "effects_markdown",
    "factorial",
    "from_record",
    "html_page",
    "load_runs",
    "markdown",
    "multi_baseline_markdown",
    "power",
    "power_markdown",
]

ACC_RESAMPLES = 1000
DIFF_RESAMPLES = 2000
_SEED_SUFFIX = re.compile(r"[-_.]?(?:s|seed)\d+$")


@dataclass
class RunResult:
    """One evaluated run: per-question correctness on each test set, and its schedule."""

    label: str
    seed: int
    source: str
    evaluated: str = "after"  # "after" training, or "before" (the pretrained student)
    config: dict[str, Any] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)
    correct: dict[str, np.ndarray] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float | None = None
    train_resumed: bool = False
    same_schedule_as: str | None = None
    named: bool = False  # the label is a variant name (archived record), not a folder name


# ----------------------------------------------------------------- loading
def _read_predictions(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    ids = [str(r.get("id", i)) for i, r in enumerate(rows)]
    return ids, np.array([bool(r["correct"]) for r in rows], dtype=bool)


def _run_config(run_dir: Path) -> dict[str, Any]:
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text(encoding="utf-8"))
        if isinstance(m.get("run_config"), dict):
            return dict(m["run_config"])
    import yaml

    candidates = [run_dir / "config.yaml"]
    if metrics.is_file():
        src = json.loads(metrics.read_text(encoding="utf-8")).get("config")
        if src:
            candidates.append(Path(str(src)))
    for path in candidates:
        if path.is_file():
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            return dict(raw) if isinstance(raw, dict) else {}
    return {}


def _load_run_dir(run_dir: Path, *, before: bool) -> list[RunResult]:
    cfg = _run_config(run_dir)
    seed = int(cfg.get("seed", 0))
    out: list[RunResult] = []
    steps = [("eval_after", "after")] + ([("eval_before", "before")] if before else [])
    for step, when in steps:
        preds = sorted((run_dir / step).glob("predictions-*.jsonl"))
        if not preds:
            continue
        run = RunResult(
            label=run_dir.name, seed=seed, source=str(run_dir), evaluated=when, config=cfg
        )
        for p in preds:
            name = p.stem[len("predictions-") :]
            run.ids[name], run.correct[name] = _read_predictions(p)
        if when == "after":
            marker = run_dir / "train" / ".kpod-step.json"
            if marker.is_file():
                m = json.loads(marker.read_text(encoding="utf-8"))
                run.train_seconds = float(m.get("seconds", math.nan))
                run.train_resumed = bool(m.get("resumed", False))
            log = run_dir / "train" / "kpod_stages.jsonl"
            if log.is_file():
                for line in log.read_text(encoding="utf-8").splitlines():
                    st = json.loads(line)
                    summary = {k: v for k, v in st.items() if not isinstance(v, list)}
                    summary["advanced"] = len(st.get("selected", []))
                    if "given_steps" in st:
                        summary["given_steps"] = np.asarray(st["given_steps"], dtype=np.int64)
                    run.stages.append(summary)
        out.append(run)
    if not out:
        raise FileNotFoundError(f"{run_dir}: no predictions in eval_after/ (an unfinished run?)")
    return out


def _load_record(path: Path) -> RunResult:
    return from_record(json.loads(path.read_text(encoding="utf-8")), str(path))


def from_record(rec: Mapping[str, Any], source: str = "") -> RunResult:
    """A run from an archived record (``scripts/reproduce_svamp.py``'s schema)."""
    if "variant" not in rec or "correct" not in rec:
        raise ValueError(f"{source or 'record'}: not a run record (needs 'variant' and 'correct')")
    evaluated = rec.get("evaluated") or ("before" if rec["variant"] == "zero-shot" else "after")
    run = RunResult(
        label=str(rec["variant"]),
        seed=int(rec.get("seed", 0)),
        source=source,
        evaluated=evaluated,
        config=dict(rec.get("config") or {}),
        train_seconds=rec.get("train_seconds"),
        train_resumed=bool(rec.get("train_resumed", False)),
        same_schedule_as=rec.get("same_schedule_as"),
        named=True,
    )
    for ds, bits in rec["correct"].items():
        run.correct[ds] = np.array([b == "1" for b in bits], dtype=bool)
        run.ids[ds] = [str(x) for x in rec.get("ids", {}).get(ds, range(len(bits)))]
    run.stages = [dict(st) for st in rec.get("stages") or []]
    return run


def load_runs(paths: Iterable[str | Path], *, before: bool = False) -> list[RunResult]:
    """Runs from ``kpod run`` directories, archived ``*.json`` records, or folders of records.

    ``before``: also the evaluation before training of each run directory
    (the pretrained student), as a run of its own.
    """
    runs: list[RunResult] = []
    for p in map(Path, paths):
        if p.is_file():
            runs.append(_load_record(p))
        elif (p / "eval_after").is_dir():
            runs.extend(_load_run_dir(p, before=before))
        elif p.is_dir() and any(p.glob("*.json")):
            runs.extend(_load_record(q) for q in sorted(p.glob("*.json")))
        else:
            raise FileNotFoundError(f"{p}: neither a kpod run directory nor a run record")
    return runs


# ----------------------------------------------------------------- grouping
def _normalized(cfg: Any, ignore: frozenset[str], prefix: str = "") -> Any:
    if isinstance(cfg, Mapping):
        out = {}
        for k, v in cfg.items():
            key = f"{prefix}{k}"
            if k == "seed" or key in ignore:
                continue
            out[str(k)] = _normalized(v, ignore, key + ".")
        return out
    if isinstance(cfg, list | tuple):
        return [_normalized(v, ignore, prefix) for v in cfg]
    return cfg


DEFAULT_IGNORE = ("run_dir", "evaluation.before")


def _config_key(run: RunResult, ignore: frozenset[str]) -> str:
    return json.dumps(_normalized(run.config, ignore), sort_keys=True, default=str)


def _group_key(run: RunResult, ignore: frozenset[str]) -> str:
    # An archived record names its variant: records of one variant are its seeds. A run
    # directory is known by its config: runs whose configs differ only in seed pool.
    if run.named:
        return json.dumps([run.evaluated, "variant", run.label])
    if run.evaluated == "before":
        # The pretrained student: only what the evaluation before training reads matters.
        seen = {k: v for k, v in run.config.items() if k in _BEFORE_KEYS}
        cfg = json.dumps(_normalized(seen, ignore), sort_keys=True, default=str)
        return json.dumps([run.evaluated, "config", cfg])
    return json.dumps([run.evaluated, "config", _config_key(run, ignore)])


_BEFORE_KEYS = ("student", "kind", "data", "evaluation")


def _group_label(runs: Sequence[RunResult]) -> str:
    if runs[0].evaluated == "before" and not runs[0].named:
        return "before training"
    names = list(dict.fromkeys(_SEED_SUFFIX.sub("", r.label) or r.label for r in runs))
    return "+".join(names)


def _groups(
    runs: Sequence[RunResult], ignore: Iterable[str], warnings: list[str] | None = None
) -> dict[str, list[RunResult]]:
    ign = frozenset([*DEFAULT_IGNORE, *ignore])
    by_key: dict[str, list[RunResult]] = {}
    for run in runs:
        by_key.setdefault(_group_key(run, ign), []).append(run)
    out: dict[str, list[RunResult]] = {}
    for members in by_key.values():
        if members[0].evaluated == "before" and not members[0].named:
            # Every run of the grid evaluated the same pretrained student: one per seed.
            members = list({r.seed: r for r in reversed(members)}.values())[::-1]
        label = _group_label(members)
        n = 2
        while label in out:  # same name, other settings
            label = f"{_group_label(members)} (config {n})"
            n += 1
        out[label] = sorted(members, key=lambda r: r.seed)
        configs = {_config_key(r, ign) for r in members if r.config}
        if len(configs) > 1 and warnings is not None:
            warnings.append(
                f"{label}: its runs' configs differ beyond the seed, yet they are pooled as "
                "one variant (archived records are grouped by their variant name)"
            )
    return out


# ----------------------------------------------------------------- comparing
Interval = tuple[float, float, float]  # mean, low, high


@dataclass
class RunRow:
    group: str
    run: RunResult
    accuracy: dict[str, Interval]
    n: dict[str, int]
    difference: dict[str, Interval]  # against the paired baseline run; absent if unpaired
    paired_with: str | None = None


@dataclass
class GroupRow:
    group: str
    runs: int
    accuracy: dict[str, Interval]
    difference: dict[str, Interval]


@dataclass
class Comparison:
    sets: list[str]
    baseline: str
    rows: list[RunRow]
    pooled: list[GroupRow]
    # (group, seed, per stage (advanced, eligible, bound)) for runs whose stages record eligibility
    schedules: list[tuple[str, int, list[tuple[int, int, bool]]]]
    # (group, seed, per stage: questions whose given steps differ from the baseline's)
    schedule_differences: list[tuple[str, int, list[int]]]
    warnings: list[str] = field(default_factory=list)
    scheme: str = "pairs"  # how pooled intervals resample: "pairs" or "questions"


def _scheduled(run: RunResult) -> list[dict[str, Any]]:
    """The run's stages 1..T that record eligibility (none without progression).

    Stages after T give every question its full rationale; they are logged but
    are not part of the schedule. T is ``training.stages`` or half the epochs, at
    least 1 (``KpodConfig.num_stages``; 3 epochs when unset, the Trainer's default).
    """
    training = run.config.get("training") or {}
    if training.get("no_progression"):
        return []
    last = training.get("stages") or max(1, int(training.get("num_train_epochs", 3)) // 2)
    return [
        st for st in run.stages if st.get("eligible") is not None and int(st["stage"]) <= int(last)
    ]


def _accuracy(c: np.ndarray) -> Interval:
    lo, hi = bootstrap_interval(c, n_resamples=ACC_RESAMPLES)
    return float(c.mean()) if c.size else math.nan, lo, hi


def _find_baseline(groups: Mapping[str, list[RunResult]], baseline: str | None) -> str:
    if baseline is None:
        return next(iter(groups))
    if baseline in groups:
        return baseline
    for label, runs in groups.items():
        for r in runs:
            if baseline in (r.label, r.source) or Path(baseline).resolve() == Path(r.source):
                return label
    raise ValueError(f"baseline {baseline!r} is none of the runs: {sorted(groups)}")


def compare(
    runs: Sequence[RunResult],
    *,
    baseline: str | None = None,
    sets: Sequence[str] | None = None,
    ignore: Iterable[str] = (),
    scheme: str = "pairs",
) -> Comparison:
    """Accuracies, paired differences against ``baseline`` (a group label, a run's
    name or path; default: the first run's group) and schedules of ``runs``.

    ``scheme``: how the pooled intervals resample: ``"pairs"`` (question-seed pairs
    as independent units) or ``"questions"`` (questions, every seed of a drawn
    question kept; :func:`kpod.stats.question_bootstrap`). The per-run intervals
    are the same under both.
    """
    if not runs:
        raise ValueError("nothing to compare: no runs")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    warnings: list[str] = []
    groups = _groups(runs, ignore, warnings)
    base = _find_baseline(groups, baseline)
    base_runs = groups[base]
    if sets is None:
        sets = list(dict.fromkeys(ds for r in runs for ds in r.correct))
    sets = list(sets)

    def partner(run: RunResult) -> RunResult | None:
        same = [b for b in base_runs if b.seed == run.seed]
        if same:
            return same[0]
        # The pretrained student is greedy and seed-free: any baseline seed pairs.
        return base_runs[0] if run.evaluated == "before" else None

    rows: list[RunRow] = []
    pooled: list[GroupRow] = []
    for label, members in groups.items():
        acc_parts: dict[str, list[np.ndarray]] = {}
        diff_parts: dict[str, list[np.ndarray]] = {}
        acc_ids: dict[str, list[list[str]]] = {}
        diff_ids: dict[str, list[list[str]]] = {}
        for run in members:
            ref = None if label == base else partner(run)
            row = RunRow(label, run, {}, {}, {}, None if ref is None else ref.source)
            for ds in sets:
                c = run.correct.get(ds)
                if c is None:
                    continue
                row.accuracy[ds] = _accuracy(c)
                row.n[ds] = int(c.size)
                acc_parts.setdefault(ds, []).append(c)
                acc_ids.setdefault(ds, []).append(run.ids[ds])
                if ref is not None and ds in ref.correct and run.ids[ds] == ref.ids[ds]:
                    d = c.astype(np.float64) - ref.correct[ds]
                    row.difference[ds] = paired_difference(d, n_resamples=DIFF_RESAMPLES)
                    diff_parts.setdefault(ds, []).append(d)
                    diff_ids.setdefault(ds, []).append(run.ids[ds])
            rows.append(row)
        g = GroupRow(label, len(acc_parts.get(sets[0], [])) if sets else 0, {}, {})
        for ds, parts in acc_parts.items():
            if scheme == "pairs":
                g.accuracy[ds] = _accuracy(np.concatenate(parts))
            else:
                m = _question_matrix(acc_ids[ds], parts, f"{label}: {ds}", warnings)
                g.accuracy[ds] = question_bootstrap(m, n_resamples=ACC_RESAMPLES)
        for ds, dparts in diff_parts.items():
            if scheme == "pairs":
                g.difference[ds] = paired_difference(
                    np.concatenate(dparts), n_resamples=DIFF_RESAMPLES
                )
            else:
                m = _question_matrix(diff_ids[ds], dparts, f"{label} - {base}: {ds}", warnings)
                g.difference[ds] = question_bootstrap(m, n_resamples=DIFF_RESAMPLES)
        pooled.append(g)

    schedules: list[tuple[str, int, list[tuple[int, int, bool]]]] = []
    differences: list[tuple[str, int, list[int]]] = []
    for row in rows:
        stages = _scheduled(row.run)
        if stages:
            schedules.append(
                (
                    row.group,
                    row.run.seed,
                    [
                        (int(st["advanced"]), int(st["eligible"]), bool(st.get("bound")))
                        for st in stages
                    ],
                )
            )
        ref = next((b for b in base_runs if b.seed == row.run.seed), None)
        if ref is None or row.group == base or row.run.evaluated != "after":
            continue
        mine = [st.get("given_steps") for st in _scheduled(row.run)]
        theirs = [st.get("given_steps") for st in _scheduled(ref)]
        counts = [
            int(np.count_nonzero(a != b))
            for a, b in zip(mine, theirs, strict=False)
            if a is not None and b is not None and a.shape == b.shape
        ]
        if counts:
            differences.append((row.group, row.run.seed, counts))
    for row in rows:
        for ds in sets:
            if ds in row.accuracy and row.group != base and ds not in row.difference:
                if row.paired_with is None:
                    why = "no baseline run of its seed"
                else:
                    why = "not on the same questions as its baseline run"
                warnings.append(f"{row.run.source}: {ds}: no paired difference ({why})")
    return Comparison(sets, base, rows, pooled, schedules, differences, warnings, scheme)


SCHEMES = ("pairs", "questions")


def _question_matrix(
    ids: Sequence[Sequence[str]],
    values: Sequence[np.ndarray],
    what: str,
    warnings: list[str] | None = None,
) -> np.ndarray:
    """(runs x questions) matrix of ``values`` on the questions every run has, in the
    first run's order; a note in ``warnings`` when some questions are left out."""
    common = set(ids[0])
    for q in ids[1:]:
        common &= set(q)
    order = [q for q in dict.fromkeys(ids[0]) if q in common]
    rows = []
    for q_ids, v in zip(ids, values, strict=True):
        index = {q: i for i, q in enumerate(q_ids)}
        rows.append(np.asarray(v, dtype=np.float64)[[index[q] for q in order]])
    left = sum(len(q) for q in ids) - len(order) * len(ids)
    if left and warnings is not None:
        warnings.append(
            f"{what}: {left} question evaluations left out of the pooled interval "
            f"(only the {len(order)} questions every seed evaluated are resampled)"
        )
    return np.vstack(rows) if rows else np.empty((0, 0))


# ----------------------------------------------------------------- 2x2 design
@dataclass
class Effect:
    """One contrast of the 2x2 design on one test set, pooled over seeds.

    ``estimate`` is (mean, low, high) of the per-question contrast, the interval
    resampling questions with every seed kept (:func:`kpod.stats.question_bootstrap`);
    ``per_seed`` the contrast of each seed alone, so the seeds' spread shows.
    """

    name: str
    contrast: str
    set: str
    estimate: Interval
    per_seed: list[tuple[int, float]]
    questions: int


# Cells of the 2x2: (token weights, progression) -> role name.
FACTORIAL_CELLS = ("neither", "weights", "progression", "both")
EFFECTS = (
    ("weights", "((both - progression) + (weights - neither)) / 2"),
    ("progression", "((both - weights) + (progression - neither)) / 2"),
    ("interaction", "(both - progression) - (weights - neither)"),
)


def _contrast(name: str, k: np.ndarray, s: np.ndarray, p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Per-question contrast ``name`` from the cells both (k), progression only (s),
    weights only (p) and neither (c), each a (seeds x questions) 0/1 matrix."""
    if name == "weights":
        return ((k - s) + (p - c)) / 2
    if name == "progression":
        return ((k - p) + (s - c)) / 2
    if name == "interaction":
        return (k - s) - (p - c)
    raise ValueError(f"unknown effect {name!r}")


def factorial(
    runs: Sequence[RunResult],
    *,
    neither: str = "cot",
    weights: str = "wo-prog",
    progression: str = "wo-sig",
    both: str = "kpod",
    sets: Sequence[str] | None = None,
    ignore: Iterable[str] = (),
    n_resamples: int = DIFF_RESAMPLES,
) -> tuple[list[Effect], list[str]]:
    """Main effects and interaction of the 2x2 design token weights x progression.

    Cells (group labels or run names): ``neither`` (plain CoT), ``weights`` (token
    weights only: w.o.-prog), ``progression`` (progression only: w.o.-sig) and
    ``both`` (KPOD). Runs are paired by seed and question id: only seeds that have
    all four cells and only questions that every one of those runs evaluated take
    part. For question q of seed s the contrasts are

    * weights: ((KPOD - w.o.-sig) + (w.o.-prog - CoT)) / 2, the gain from the token
      weights averaged over progression off and on;
    * progression: ((KPOD - w.o.-prog) + (w.o.-sig - CoT)) / 2;
    * interaction: (KPOD - w.o.-sig) - (w.o.-prog - CoT), how much more the weights
      give with progression than without (the same as for progression).

    Each is averaged over seeds and questions; its 95% interval resamples questions
    with every seed of a drawn question kept. Returns (effects, notes).
    """
    notes: list[str] = []
    groups = _groups(runs, ignore)
    cells = {}
    for role, name in zip(FACTORIAL_CELLS, (neither, weights, progression, both), strict=True):
        cells[role] = groups[_find_baseline(groups, name)]
    if sets is None:
        sets = list(dict.fromkeys(ds for r in runs for ds in r.correct))
    out: list[Effect] = []
    for ds in sets:
        by_seed = {
            role: {r.seed: r for r in members if ds in r.correct and r.evaluated == "after"}
            for role, members in cells.items()
        }
        seeds = sorted(set.intersection(*(set(m) for m in by_seed.values())))
        if not seeds:
            notes.append(f"{ds}: no seed has all four cells of the 2x2; no effects")
            continue
        missing = sorted(set().union(*(set(m) for m in by_seed.values())) - set(seeds))
        if missing:
            notes.append(
                f"{ds}: seeds {missing} lack a cell of the 2x2 and are left out of its effects"
            )
        runs_in = [by_seed[role][s] for s in seeds for role in FACTORIAL_CELLS]
        m = _question_matrix(
            [r.ids[ds] for r in runs_in], [r.correct[ds] for r in runs_in], f"2x2: {ds}", notes
        )
        m = m.reshape(len(seeds), len(FACTORIAL_CELLS), -1)
        c, p, s_, k = (m[:, i, :] for i in range(len(FACTORIAL_CELLS)))
        for name, text in EFFECTS:
            x = _contrast(name, k, s_, p, c)
            est = question_bootstrap(x, n_resamples=n_resamples)
            per_seed = [(seed, float(row.mean())) for seed, row in zip(seeds, x, strict=True)]
            out.append(Effect(name, text, ds, est, per_seed, int(x.shape[1])))
    return out, notes


def power(cmp: Comparison, group: str) -> dict[str, tuple[float, float]]:
    """``{set: (half-width, 80%-power difference)}`` of ``group``'s pooled paired
    difference against ``cmp``'s baseline (:func:`kpod.stats.detectable_difference`)."""
    from kpod.stats import detectable_difference

    g = next((g for g in cmp.pooled if g.group == group), None)
    if g is None:
        return {}
    return {ds: detectable_difference(iv[1], iv[2]) for ds, iv in g.difference.items()}


# ----------------------------------------------------------------- rendering
def fmt_accuracy(iv: Interval) -> str:
    m, lo, hi = iv
    return f"{100 * m:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _points(x: float) -> float:
    """``x`` in points, rounded to 0.1, with -0.0 as 0.0 (an exact zero computed as a
    difference of floats must not print as "-0.0")."""
    return round(100 * x, 1) + 0.0


def fmt_difference(iv: Interval) -> str:
    m, lo, hi = iv
    return f"{_points(m):+.1f} [{_points(lo):+.1f}, {_points(hi):+.1f}]"


@dataclass
class _Names:
    sets: Mapping[str, str]
    baseline: str
    label_column: str
    short: Mapping[str, str] = field(default_factory=dict)  # in the difference columns

    def ds(self, name: str) -> str:
        return self.sets.get(name, name)

    def ds_short(self, name: str) -> str:
        return self.short.get(name, self.ds(name))


def _train_cell(run: RunResult, names: _Names, base: str) -> str:
    if run.same_schedule_as is not None:
        same = _SEED_SUFFIX.sub("", run.same_schedule_as)
        who = names.baseline if same == _SEED_SUFFIX.sub("", base) else run.same_schedule_as
        return f"= {who}: same schedule, not retrained"
    if run.train_seconds is None or run.evaluated != "after":
        return ""
    return f"{run.train_seconds:.0f}" + (
        " (resumed; last attempt only)" if run.train_resumed else ""
    )


def _tables(
    cmp: Comparison, names: _Names
) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """(head, rows) of the per-run table and of the pooled table, as text cells."""
    b = names.baseline
    head = [names.label_column, "seed"]
    head += [names.ds(ds) for ds in cmp.sets]
    head += [f"- {b}, {names.ds_short(ds)}" for ds in cmp.sets] + ["train s"]
    body = []
    for row in cmp.rows:
        cells = [row.group, str(row.run.seed)]
        for ds in cmp.sets:
            iv = row.accuracy.get(ds)
            cells.append("not run" if iv is None else f"{fmt_accuracy(iv)} (n={row.n[ds]})")
        for ds in cmp.sets:
            d = row.difference.get(ds)
            cells.append("" if d is None else fmt_difference(d))
        cells.append(_train_cell(row.run, names, cmp.baseline))
        body.append(cells)
    phead = [names.label_column, "seeds"]
    phead += [names.ds(ds) for ds in cmp.sets]
    phead += [f"- {b}, {names.ds_short(ds)}" for ds in cmp.sets]
    pbody = []
    for g in cmp.pooled:
        cells = [g.group, str(g.runs)]
        for ds in cmp.sets:
            iv = g.accuracy.get(ds)
            cells.append("not run" if iv is None else fmt_accuracy(iv))
        for ds in cmp.sets:
            d = g.difference.get(ds)
            cells.append("" if d is None else fmt_difference(d))
        pbody.append(cells)
    return head, body, phead, pbody


def _stage_rows(cmp: Comparison, names: _Names) -> tuple[list[str], list[list[str]]]:
    if not cmp.schedules:
        return [], []
    n = max(len(s) for _, _, s in cmp.schedules)
    head = [names.label_column, "seed", *(f"stage {t}" for t in range(1, n + 1))]
    rows = []
    for group, seed, stages in cmp.schedules:
        cells = [f"{a} / {e}" + (" (bound)" if bound else "") for a, e, bound in stages]
        rows.append([group, str(seed), *cells, *[""] * (n - len(cells))])
    return head, rows


def _md(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def stage_markdown(
    cmp: Comparison, *, label_column: str = "run", source: str = "from the runs' stage logs"
) -> str:
    """Questions advanced / eligible at each stage ("" when no run records eligibility)."""
    head, rows = _stage_rows(cmp, _Names({}, cmp.baseline, label_column))
    if not rows:
        return ""
    lines = [f"Questions advanced / eligible at each stage ({source}):", "", *_md(head, rows)]
    if cmp.schedule_differences:
        n = max(len(c) for _, _, c in cmp.schedule_differences)
        dhead = [label_column, "seed", *(f"stage {t}" for t in range(1, n + 1))]
        drows = [
            [g, str(s), *map(str, c), *[""] * (n - len(c))] for g, s, c in cmp.schedule_differences
        ]
        lines += [
            "",
            f"Questions whose given-step count differs from {cmp.baseline}'s (same seed), "
            "after each stage:",
            "",
            *_md(dhead, drows),
        ]
    return "\n".join(lines) + "\n"


def accuracy_markdown(
    cmp: Comparison,
    *,
    set_names: Mapping[str, str] | None = None,
    baseline_name: str | None = None,
    label_column: str = "run",
    short_set_names: Mapping[str, str] | None = None,
) -> str:
    """The per-run table, then the groups pooled over seeds, both against the baseline.

    ``set_names`` / ``short_set_names``: display names of the test sets in the
    accuracy / difference columns; ``baseline_name``: of the baseline.
    """
    names = _Names(
        set_names or {}, baseline_name or cmp.baseline, label_column, short_set_names or {}
    )
    head, body, phead, pbody = _tables(cmp, names)
    lines = [
        "Per run (accuracy % with 95% bootstrap interval; paired bootstrap difference "
        f"against the {names.baseline} run of the same seed on the same questions):",
        "",
        *_md(head, body),
        "",
        "Pooled over seeds (questions x seeds; differences paired per question and seed):",
        "",
        *_md(phead, pbody),
    ]
    return "\n".join(lines) + "\n"


def multi_baseline_markdown(
    cmps: Sequence[tuple[str, Comparison]],
    *,
    set_names: Mapping[str, str] | None = None,
    short_set_names: Mapping[str, str] | None = None,
    label_column: str = "run",
) -> str:
    """The per-run and pooled tables with paired differences against several baselines.

    ``cmps``: (display name of the baseline, :func:`compare` of the same runs against
    it), in column order; the accuracies are the first comparison's.
    """
    if not cmps:
        return ""
    names = _Names(set_names or {}, cmps[0][0], label_column, short_set_names or {})
    first = cmps[0][1]
    sets = first.sets

    def run_key(row: RunRow) -> tuple[str, str, int]:
        return (row.run.source or row.run.label, row.run.evaluated, row.run.seed)

    by_run = [{run_key(r): r for r in cmp.rows} for _, cmp in cmps]
    by_group = [{g.group: g for g in cmp.pooled} for _, cmp in cmps]
    diff_head = [f"- {b}, {names.ds_short(ds)}" for b, _ in cmps for ds in sets]
    head = [label_column, "seed", *(names.ds(ds) for ds in sets), *diff_head, "train s"]
    body = []
    for row in first.rows:
        cells = [row.group, str(row.run.seed)]
        for ds in sets:
            iv = row.accuracy.get(ds)
            cells.append("not run" if iv is None else f"{fmt_accuracy(iv)} (n={row.n[ds]})")
        for table in by_run:
            other = table.get(run_key(row))
            for ds in sets:
                d = None if other is None else other.difference.get(ds)
                cells.append("" if d is None else fmt_difference(d))
        cells.append(_train_cell(row.run, names, first.baseline))
        body.append(cells)
    phead = [label_column, "seeds", *(names.ds(ds) for ds in sets), *diff_head]
    pbody = []
    for g in first.pooled:
        cells = [g.group, str(g.runs)]
        for ds in sets:
            iv = g.accuracy.get(ds)
            cells.append("not run" if iv is None else fmt_accuracy(iv))
        for groups in by_group:
            pooled = groups.get(g.group)
            for ds in sets:
                d = None if pooled is None else pooled.difference.get(ds)
                cells.append("" if d is None else fmt_difference(d))
        pbody.append(cells)
    against = " and ".join(b for b, _ in cmps)
    pooled_how = (
        "questions resampled with every seed of a drawn question kept"
        if first.scheme == "questions"
        else "question-seed pairs resampled"
    )
    lines = [
        "Per run (accuracy % with 95% bootstrap interval; paired bootstrap difference "
        f"against the {against} runs of the same seed on the same questions):",
        "",
        *_md(head, body),
        "",
        f"Pooled over seeds (differences paired per question and seed; {pooled_how}):",
        "",
        *_md(phead, pbody),
    ]
    return "\n".join(lines) + "\n"


def effects_markdown(
    effects: Sequence[Effect],
    *,
    set_names: Mapping[str, str] | None = None,
    cell_names: Mapping[str, str] | None = None,
) -> str:
    """The 2x2 effects as a Markdown table ("" when there are none).

    ``cell_names``: display names of the cells in the contrast column, e.g.
    ``{"both": "KPOD", "neither": "CoT", ...}``.
    """
    if not effects:
        return ""
    sn = set_names or {}
    head = ["effect", "set", "estimate, points [95% CI]", "per seed", "seeds x questions"]
    rows = []
    for e in effects:
        contrast = e.contrast
        for role, text in (cell_names or {}).items():
            contrast = re.sub(rf"\b{role}\b", text, contrast)
        rows.append(
            [
                f"{e.name}: {contrast}",
                sn.get(e.set, e.set),
                fmt_difference(e.estimate),
                " / ".join(f"{_points(v):+.1f}" for _, v in e.per_seed),
                f"{len(e.per_seed)} x {e.questions}",
            ]
        )
    return "\n".join(_md(head, rows)) + "\n"


def power_markdown(
    cmp: Comparison,
    group: str,
    *,
    set_names: Mapping[str, str] | None = None,
    group_name: str | None = None,
    baseline_name: str | None = None,
) -> str:
    """One line per test set: the smallest difference ``group``'s pooled interval
    against the baseline could detect (:func:`power`); "" when unpaired."""
    pw = power(cmp, group)
    if not pw:
        return ""
    sn = set_names or {}
    who = f"{group_name or group} - {baseline_name or cmp.baseline}"
    g = next(g for g in cmp.pooled if g.group == group)
    lines = []
    for ds, (half, mde) in pw.items():
        lines.append(
            f"- {sn.get(ds, ds)}: {who} pooled over {g.runs} seed{'s' * (g.runs != 1)}: "
            "the interval is "
            f"+-{100 * half:.1f} points wide on each side, so an observed difference "
            f"must exceed {100 * half:.1f} points to exclude 0; a true difference of "
            f"{100 * mde:.1f} points is detected with 80% probability."
        )
    return "\n".join(lines) + "\n"


def markdown(
    cmp: Comparison,
    *,
    set_names: Mapping[str, str] | None = None,
    baseline_name: str | None = None,
    label_column: str = "run",
    stage_source: str = "from the runs' stage logs",
) -> str:
    """Stage table (when any run has one), then the accuracy tables; Markdown."""
    stages = stage_markdown(cmp, label_column=label_column, source=stage_source)
    acc = accuracy_markdown(
        cmp, set_names=set_names, baseline_name=baseline_name, label_column=label_column
    )
    return (stages + "\n" if stages else "") + acc


def _html_table(head: Sequence[str], rows: Sequence[Sequence[str]], tid: str) -> str:
    e = html.escape
    out = [f"<table id='{tid}'><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def comparison_figure(
    cmp: Comparison, set_names: Mapping[str, str] | None = None, baseline_name: str | None = None
) -> Any:
    """Pooled accuracy (left) and pooled paired difference to the baseline (right), per
    test set, with 95% intervals: a matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = set_names or {}
    groups = [g.group for g in cmp.pooled]
    height = 1.0 + 0.35 * len(groups) * max(1, len(cmp.sets))
    fig, (ax_a, ax_d) = plt.subplots(
        1, 2, figsize=(9, min(height, 14)), sharey=True, layout="constrained"
    )
    n_sets = max(1, len(cmp.sets))
    width = 0.7 / n_sets
    for k, ds in enumerate(cmp.sets):
        y = np.arange(len(groups)) + (k - (n_sets - 1) / 2) * width
        for ax, attr in ((ax_a, "accuracy"), (ax_d, "difference")):
            pts = [(yy, getattr(g, attr).get(ds)) for yy, g in zip(y, cmp.pooled, strict=True)]
            pts = [(yy, iv) for yy, iv in pts if iv is not None]
            if not pts:
                continue
            m = np.array([100 * iv[0] for _, iv in pts])
            lo = np.array([100 * iv[1] for _, iv in pts])
            hi = np.array([100 * iv[2] for _, iv in pts])
            ax.errorbar(
                m,
                [yy for yy, _ in pts],
                xerr=[m - lo, hi - m],
                fmt="o",
                capsize=3,
                label=names.get(ds, ds),
                color=f"C{k}",
            )
    ax_a.set_yticks(np.arange(len(groups)), groups)
    ax_a.invert_yaxis()
    ax_a.set_xlabel("accuracy % (pooled over seeds)")
    ax_d.axvline(0, color="#888", lw=1)
    ax_d.set_xlabel(f"paired difference to {baseline_name or cmp.baseline}, points")
    ax_a.grid(axis="x", alpha=0.3)
    ax_d.grid(axis="x", alpha=0.3)
    if cmp.sets:
        fig.legend(*ax_a.get_legend_handles_labels(), loc="outside lower center", ncol=n_sets)
    return fig


def html_page(
    cmp: Comparison,
    *,
    title: str = "kpod compare",
    set_names: Mapping[str, str] | None = None,
    baseline_name: str | None = None,
    sources: Sequence[str] = (),
) -> str:
    """A self-contained HTML page: the figure, the accuracy tables and the schedules."""
    from kpod.report import STYLE, figure_png

    names = _Names(set_names or {}, baseline_name or cmp.baseline, "run")
    head, body, phead, pbody = _tables(cmp, names)
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>{STYLE}td{{white-space:nowrap}}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>Baseline: <b>{e(names.baseline)}</b>. Accuracy in % with 95% bootstrap intervals; "
        "differences are paired bootstrap differences against the baseline run of the same "
        "seed on the same questions (percentage points). Groups are runs whose configs "
        "differ only in seed.</p>",
        "<h2>Pooled over seeds</h2>",
        _html_table(phead, pbody, "pooled"),
    ]
    if cmp.pooled and cmp.sets:
        data = figure_png(comparison_figure(cmp, set_names, baseline_name))
        cap = "Pooled accuracy and paired difference to the baseline, 95% intervals"
        parts.append(
            f"<figure><img alt='{e(cap)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{e(cap)}</figcaption></figure>"
        )
    parts += ["<h2>Per run</h2>", _html_table(head, body, "runs")]
    shead, srows = _stage_rows(cmp, names)
    if srows:
        parts += ["<h2>Schedules: questions advanced / eligible per stage</h2>"]
        parts.append(_html_table(shead, srows, "schedules"))
    if cmp.schedule_differences:
        n = max(len(c) for _, _, c in cmp.schedule_differences)
        dhead = ["run", "seed", *(f"stage {t}" for t in range(1, n + 1))]
        drows = [
            [g, str(s), *map(str, c), *[""] * (n - len(c))] for g, s, c in cmp.schedule_differences
        ]
        parts.append(
            f"<h3>Questions whose given-step count differs from {e(cmp.baseline)}'s "
            "(same seed), after each stage</h3>"
        )
        parts.append(_html_table(dhead, drows, "schedule-differences"))
    if cmp.warnings:
        parts.append("<h2>Notes</h2><ul id='notes'>")
        parts += [f"<li>{e(w)}</li>" for w in cmp.warnings]
        parts.append("</ul>")
    if sources:
        parts.append("<details><summary>Runs compared</summary><ul>")
        parts += [f"<li><code>{e(s)}</code></li>" for s in sources]
        parts.append("</ul></details>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
