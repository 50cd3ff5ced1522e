"""``kpod run CONFIG.yaml``: the paper's Algorithm 1 end to end, cached step by step.

Steps, in order (each writes into ``<run_dir>/<step>/``)::

    data        load + validate + teacher-filter + segment + tokenize the rationales
    weighting   train the keypoint weighting module (Eqs. 2-7)
    scores      per-token weights for every training example (``token_weights``)
    difficulty  step difficulties with the pretrained student (Eq. 8)
    clusters    K-means over question embeddings (``cluster``)
    eval_before accuracy of the pretrained student (greedy decoding)
    train       progressive distillation (one curriculum stage per epoch)
    eval_after  accuracy of the distilled student
    report      metrics.json and report.html in the run directory

A step is skipped when a marker ``<run_dir>/<step>/.kpod-step.json`` holds the
fingerprint of everything it depends on: its config section, the upstream
steps' fingerprints, the content of the input files and the kpod version. A
step interrupted midway leaves no marker and is redone, except that training
resumes from its last checkpoint and evaluation from its saved generations.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kpod.schedule import StageResult

STEPS = (
    "data",
    "weighting",
    "scores",
    "difficulty",
    "clusters",
    "eval_before",
    "train",
    "eval_after",
    "report",
)

# step -> the config sections and upstream steps its fingerprint covers
_DEPENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "data": (("student", "data"), ()),
    "weighting": (("weighting",), ("data",)),
    "scores": (("weighting",), ("data", "weighting")),
    "difficulty": (("difficulty", "training.uniform_difficulty"), ("scores",)),
    "clusters": (("clusters",), ("data",)),
    "eval_before": (("evaluation",), ("data",)),
    "train": (("training",), ("difficulty", "clusters")),
    "eval_after": (("evaluation",), ("train",)),
    "report": ((), ("eval_before", "eval_after")),
}

_TOP_KEYS = {
    "run_dir",
    "student",
    "kind",
    "seed",
    "data",
    "weighting",
    "difficulty",
    "clusters",
    "training",
    "evaluation",
}


@dataclass
class RunConfig:
    """A ``kpod run`` configuration (YAML). Unknown keys are errors."""

    run_dir: str
    student: str = "smollm2-135m"
    kind: str = "causal"
    seed: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    weighting: dict[str, Any] = field(default_factory=dict)
    difficulty: dict[str, Any] = field(default_factory=dict)
    clusters: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @classmethod
    def load(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> RunConfig:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"run config {path} does not exist")
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: a run config is a mapping, got {type(raw).__name__}")
        for key, value in (overrides or {}).items():
            _set_dotted(raw, key, value)
        unknown = set(raw) - _TOP_KEYS
        if unknown:
            raise ValueError(
                f"{path}: unknown top-level keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}"
            )
        if "run_dir" not in raw:
            raise ValueError(f"{path}: 'run_dir' is required (where the run's files go)")
        if raw.get("kind", "causal") not in ("causal", "seq2seq"):
            raise ValueError(f"{path}: kind must be 'causal' or 'seq2seq', got {raw['kind']!r}")
        data = raw.get("data") or {}
        if "train" not in data:
            raise ValueError(f"{path}: data.train (the training rationales file) is required")
        base = path.resolve().parent
        cfg = cls(**{k: copy.deepcopy(v) for k, v in raw.items()}, source=path)
        cfg.data = _resolve_paths(cfg.data, base)
        rd = Path(cfg.run_dir)
        cfg.run_dir = str(rd if rd.is_absolute() else (Path.cwd() / rd))
        return cfg

    def section(self, dotted: str) -> Any:
        if "." in dotted:
            head, key = dotted.split(".", 1)
            return getattr(self, head).get(key)
        return getattr(self, dotted)


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative data paths are relative to the config file's folder."""

    def fix(p: Any) -> Any:
        if isinstance(p, str):
            q = Path(p)
            return str(q if q.is_absolute() else (base / q).resolve())
        if isinstance(p, dict) and "path" in p:
            return {**p, "path": fix(p["path"])}
        return p

    out = dict(data)
    out["train"] = fix(out["train"])
    test = out.get("test") or {}
    if isinstance(test, str):
        test = {"test": test}
    out["test"] = {name: fix(spec) for name, spec in dict(test).items()}
    return out


def _started_with(path: Path, fingerprint: str) -> bool:
    """Whether the partial work in a step folder was started with these inputs."""
    try:
        return bool(json.loads(path.read_text(encoding="utf-8"))["fingerprint"] == fingerprint)
    except (OSError, ValueError, KeyError):
        return False


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Run:
    """A run directory: cached steps over one :class:`RunConfig`."""

    def __init__(self, config: RunConfig, *, force: tuple[str, ...] = ()) -> None:
        from kpod import __version__

        self.config = config
        self.dir = Path(config.run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        bad = set(force) - set(STEPS)
        if bad:
            raise ValueError(f"unknown steps {sorted(bad)} in --force; steps are {list(STEPS)}")
        self.force = set(force)
        self.version = __version__
        self.fingerprints: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._tokenizer: Any = None

    # ------------------------------------------------------------ caching
    def fingerprint(self, step: str) -> str:
        sections, upstream = _DEPENDS[step]
        payload: dict[str, Any] = {
            "kpod": self.version,
            "step": step,
            "kind": self.config.kind,
            "seed": self.config.seed,
            "config": {s: self.config.section(s) for s in sections},
            "upstream": {u: self.fingerprints[u] for u in upstream},
        }
        if step == "data":
            files = [self.config.data["train"]]
            for spec in self.config.data["test"].values():
                files.append(spec["path"] if isinstance(spec, dict) else spec)
            payload["files"] = {f: _file_digest(f) for f in files}
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def step_dir(self, step: str) -> Path:
        return self.dir / step

    def _marker(self, step: str) -> Path:
        return self.step_dir(step) / ".kpod-step.json"

    def is_done(self, step: str) -> bool:
        marker = self._marker(step)
        if step in self.force or not marker.is_file():
            return False
        try:
            saved = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        return bool(saved.get("fingerprint") == self.fingerprints[step])

    def run_step(self, step: str, fn: Callable[[Path], None]) -> None:
        self.fingerprints[step] = self.fingerprint(step)
        if self.is_done(step):
            saved = json.loads(self._marker(step).read_text(encoding="utf-8"))
            self.timings[step] = float(saved.get("seconds", 0.0))
            print(f"kpod run: {step}: cached ({self.fingerprints[step]})", flush=True)
            return
        out = self.step_dir(step)
        started = out / ".kpod-started.json"
        # An earlier attempt with the same inputs stopped before its end: resume it.
        resumed = step not in self.force and _started_with(started, self.fingerprints[step])
        if out.is_dir() and not resumed:
            # Leftovers of other inputs (checkpoints, partial generations) must not be resumed.
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        self._marker(step).unlink(missing_ok=True)
        started.write_text(json.dumps({"fingerprint": self.fingerprints[step]}) + "\n")
        print(f"kpod run: {step} ...", flush=True)
        t0 = time.perf_counter()
        fn(out)
        seconds = time.perf_counter() - t0
        self.timings[step] = seconds
        # `seconds` is this attempt's; `resumed` says earlier, interrupted ones came first.
        marker = {"fingerprint": self.fingerprints[step], "seconds": seconds, "resumed": resumed}
        self._marker(step).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        note = " (resumed: this attempt only)" if resumed else ""
        print(f"kpod run: {step}: done in {seconds:.1f} s{note}", flush=True)

    # ------------------------------------------------------------ helpers
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from kpod.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.config.student)
            if self._tokenizer.pad_token is None:
                self._tokenizer.pad_token = self._tokenizer.eos_token
        return self._tokenizer

    def student(self, path: str | None = None, dtype: str | None = None) -> Any:
        """The student (pretrained, or the distilled one at ``path``) in ``dtype``.

        Training always loads float32 master weights (bf16 comes from autocast);
        inference steps take ``evaluation.dtype`` / ``difficulty.dtype``, whose
        ``auto`` (the default) is bfloat16 where the device computes it natively
        and float32 elsewhere (:mod:`kpod.precision`).
        """
        from kpod.models import load_student
        from kpod.precision import resolve_dtype

        resolved = None if dtype is None else resolve_dtype(dtype)
        return load_student(path or self.config.student, kind=self.config.kind, dtype=resolved)

    def load_dataset(self, step: str) -> Any:
        from kpod.data.prepared import load_prepared

        return load_prepared(self.step_dir(step) / "dataset")

    def save_dataset(self, ds: Any, out: Path) -> None:
        from kpod.data.prepared import save_prepared

        save_prepared(ds, out / "dataset")

    @property
    def weights_enabled(self) -> bool:
        t = self.config.training
        needs = not (t.get("equal_token_weights") and t.get("uniform_difficulty"))
        return bool(self.config.weighting.get("enabled", True)) and needs

    def test_sets(self) -> dict[str, list[dict[str, Any]]]:
        from kpod.data import read_records

        limit = self.config.data.get("max_test")
        sets: dict[str, list[dict[str, Any]]] = {}
        for name, spec in self.config.data["test"].items():
            path, fmt = (
                (spec["path"], spec.get("format", "auto"))
                if isinstance(spec, dict)
                else (spec, "auto")
            )
            rows = [dict(r) for r in read_records(path, format=fmt, require_rationale=False)]
            sets[name] = rows[:limit] if limit else rows
        return sets

    # ------------------------------------------------------------ steps
    def step_data(self, out: Path) -> None:
        from kpod.data import SkipReport, filter_by_answer, load_records, prepare_examples

        d = self.config.data
        report = SkipReport()
        skip = bool(d.get("skip_invalid", False))
        ds = load_records(
            d["train"],
            format=d.get("format", "auto"),
            skip_invalid=skip,
            report=report,
            cache_dir=str(out / "cache"),
        )
        if skip and len(report):
            report.write(out / "skipped.jsonl")
            print(
                f"kpod run: data: skipped {len(report)} invalid records (see {out / 'skipped.jsonl'})"
            )
        if d.get("max_train"):
            ds = ds.select(range(min(int(d["max_train"]), len(ds))))
        policy = d.get("teacher_filter", "drop")
        if policy != "off":
            ds, freport = filter_by_answer(ds, keep_disagreeing=policy == "keep")
            print(f"kpod run: data: {freport.summary()}")
        ds = prepare_examples(ds, self.tokenizer, kind=self.config.kind, num_proc=d.get("num_proc"))
        if d.get("max_tokens"):
            # Long examples are dropped (counted), never truncated: a cut rationale
            # would lose the answer part the loss and the evaluation rely on.
            limit = int(d["max_tokens"])
            before = len(ds)
            ds = ds.filter(lambda ex: len(ex["input_ids"]) <= limit)
            print(
                f"kpod run: data: dropped {before - len(ds)} of {before} training examples "
                f"longer than data.max_tokens={limit} tokens (question + rationale + answer)"
            )
            if len(ds) == 0:
                raise ValueError(f"data.max_tokens={limit} drops every training example; raise it")
        self.save_dataset(ds, out)
        (out / "test_sets.json").write_text(json.dumps(self.test_sets()), encoding="utf-8")

    def step_weighting(self, out: Path) -> None:
        if not self.weights_enabled:
            (out / "disabled").write_text("equal token weights: no module trained\n")
            return
        from kpod.training.config import normalize_yaml_strategies
        from kpod.weighting.train import WeightingConfig, train_weighting

        # pipeline-level keys; the rest are WeightingConfig fields
        local = {"enabled", "max_examples"}
        opts = normalize_yaml_strategies(
            {k: v for k, v in self.config.weighting.items() if k not in local}
        )
        opts.setdefault("student", self.config.student)
        opts.setdefault("seed", self.config.seed)
        opts["output_dir"] = str(out / "module")
        cfg = WeightingConfig(**opts)
        ds = self.load_dataset("data")
        limit = self.config.weighting.get("max_examples")
        if limit and len(ds) > int(limit):
            # The module sees a seeded random subset; every example is scored later.
            ds = ds.shuffle(seed=self.config.seed).select(range(int(limit)))
        train_weighting(ds, cfg, self.tokenizer)

    def step_scores(self, out: Path) -> None:
        ds = self.load_dataset("data")
        if self.weights_enabled:
            from kpod.weighting.module import KeypointWeighting
            from kpod.weighting.score import score_dataset

            module = KeypointWeighting.load(self.step_dir("weighting") / "module")
            ds = score_dataset(ds, module, tokenizer=self.tokenizer)
        self.save_dataset(ds, out)

    def step_difficulty(self, out: Path) -> None:
        from kpod.training.difficulty import add_step_difficulty

        ds = self.load_dataset("scores")
        uniform = (
            bool(self.config.training.get("uniform_difficulty"))
            or "token_weights" not in ds.column_names
        )
        ds = add_step_difficulty(
            ds,
            self.student(dtype=self.config.difficulty.get("dtype", "auto")),
            kind=self.config.kind,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=int(self.config.difficulty.get("batch_size", 16)),
            uniform=uniform,
        )
        self.save_dataset(ds, out)

    def step_clusters(self, out: Path) -> None:
        from kpod.data import cluster_questions

        ds = self.load_dataset("data")
        c = self.config.clusters
        labels = cluster_questions(
            ds,
            model=self.student(),
            k=int(c.get("k", 5)),
            seed=int(c.get("seed", self.config.seed)),
        )
        (out / "clusters.json").write_text(json.dumps(labels.tolist()), encoding="utf-8")

    def _evaluate(self, out: Path, model_path: str | None) -> None:
        from kpod.evaluation import evaluate_many

        e = self.config.evaluation
        sets = json.loads((self.step_dir("data") / "test_sets.json").read_text(encoding="utf-8"))
        model = self.student(model_path, dtype=e.get("dtype", "auto"))
        evaluate_many(
            model,
            self.tokenizer,
            sets,
            output_dir=out,
            kind=self.config.kind,
            batch_size=int(e.get("batch_size", 16)),
            max_new_tokens=int(e.get("max_new_tokens", 256)),
            n_resamples=int(e.get("n_resamples", 1000)),
            seed=self.config.seed,
        )

    def step_eval_before(self, out: Path) -> None:
        if not self.config.evaluation.get("before", True):
            (out / "metrics.json").write_text("{}\n")
            return
        self._evaluate(out, None)

    def _train_inputs(self, out: Path) -> tuple[Any, Any]:
        """The training examples (with clusters) and the KpodConfig of the train step."""
        ds = self.load_dataset("difficulty")
        labels = json.loads((self.step_dir("clusters") / "clusters.json").read_text())
        if "cluster" in ds.column_names:
            ds = ds.remove_columns("cluster")
        ds = ds.add_column("cluster", labels)
        return ds, self.training_config(out)

    def training_config(self, out: Path | None = None) -> Any:
        """The KpodConfig of the train step (its defaults filled in), writing to ``out``."""
        from kpod.training.config import config_from_dict

        opts = dict(self.config.training)
        opts.setdefault("seed", self.config.seed)
        opts["kind"] = self.config.kind
        opts["output_dir"] = str(out if out is not None else self.step_dir("train"))
        return config_from_dict(opts)

    def step_train(self, out: Path) -> None:
        from kpod.training.trainer import train_kpod

        ds, cfg = self._train_inputs(out)
        train_kpod(self.student(), self.tokenizer, ds, cfg, out, resume_from_checkpoint=True)

    def schedule_preview(self) -> list[StageResult]:
        """Stages 1..T of the curriculum the train step will follow, computed without training.

        Needs the difficulty and clusters steps done. Records as in
        ``kpod_stages.jsonl`` (given steps, D(t), H(t), ``bound``); empty under
        ``training.no_progression``.
        """
        from kpod.training.trainer import CurriculumSchedule

        for step in ("difficulty", "clusters"):
            if not self._marker(step).is_file():
                raise RuntimeError(
                    f"the schedule preview needs the {step!r} step; run `kpod run CONFIG "
                    f"--until clusters` first"
                )
        ds, cfg = self._train_inputs(self.step_dir("train"))
        diffs = ds["step_difficulty"] if "step_difficulty" in ds.column_names else None
        schedule = CurriculumSchedule(ds["n_steps"], diffs, ds["cluster"], cfg)
        return schedule.preview()

    def step_eval_after(self, out: Path) -> None:
        self._evaluate(out, str(self.step_dir("train")))

    def step_report(self, out: Path) -> None:
        import numpy as np

        from kpod.report import rationale_weights, source_commit, write_report
        from kpod.schedule import StageResult

        def metrics_of(step: str) -> dict[str, Any]:
            p = self.step_dir(step) / "metrics.json"
            return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}

        before, after = metrics_of("eval_before"), metrics_of("eval_after")
        metrics = {
            "config": str(self.config.source),
            "student": self.config.student,
            "before": before,
            "after": after,
            "seconds": {k: round(v, 1) for k, v in self.timings.items()},
            "commit": source_commit(),
            "run_config": {k: getattr(self.config, k) for k in sorted(_TOP_KEYS)},
        }
        (self.dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        stages_path = self.step_dir("train") / "kpod_stages.jsonl"
        stages = []
        if stages_path.is_file():
            for line in stages_path.read_text(encoding="utf-8").splitlines():
                stages.append(StageResult.from_dict(json.loads(line)))
        clusters = np.asarray(
            json.loads((self.step_dir("clusters") / "clusters.json").read_text()), dtype=np.int64
        )
        fragment, weights = None, None
        scored = self.load_dataset("scores")
        if "token_weights" in scored.column_names:
            weights = rationale_weights(scored.select_columns(["token_weights", "step_ids"]))
            from kpod.weighting.view import render_fragment

            fragment = render_fragment(scored.select(range(min(8, len(scored)))), self.tokenizer)
        write_report(
            self.dir / "report.html",
            title=f"kpod run: {Path(self.config.run_dir).name}",
            metrics=metrics,
            stages=stages,
            clusters=clusters,
            token_weight_html=fragment,
            token_weights=weights,
            run_dir=self.dir,
        )

    def run(self, until: str | None = None) -> dict[str, Any]:
        """Run (or resume) every step, or the steps up to and including ``until``.

        Returns the run's metrics, or ``{}`` when stopped early by ``until``.
        """
        if until is not None and until not in STEPS:
            raise ValueError(f"unknown step {until!r} for until; steps are {list(STEPS)}")
        for step in STEPS:
            self.run_step(step, getattr(self, f"step_{step}"))
            if step == until and step != STEPS[-1]:
                return {}
        return json.loads((self.dir / "metrics.json").read_text(encoding="utf-8"))


def run(
    config_path: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    force: tuple[str, ...] = (),
    until: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) the pipeline of ``config_path``; returns the run's metrics.

    With ``until`` only the steps up to and including that one run (``{}`` is
    returned); stopping between ``clusters`` and ``train`` prints the curriculum
    preview.
    """
    cfg = RunConfig.load(config_path, overrides)
    job = Run(cfg, force=force)
    result = job.run(until)
    if until is not None and not result:
        print(f"kpod run: stopped after {until!r} (--until)", flush=True)
        if STEPS.index("clusters") <= STEPS.index(until) < STEPS.index("train"):
            _print_schedule(job.schedule_preview(), job.training_config().delta_steps)
        return result
    _print_summary(result)
    return result


def _print_schedule(records: list[StageResult], delta_steps: int) -> None:
    """The previewed curriculum, one line per stage (``--until`` before training)."""
    if not records:
        print("kpod run: no progression (training.no_progression): every stage is full CoT")
        return
    print("\nkpod run: curriculum preview (D = budget, H = difficulty written)")
    print("  stage        D(t)        H(t)  advanced/eligible  budget bound")
    for r in records:
        print(
            f"  {r.stage:>5} {r.budget:>11.1f} {r.written:>11.1f} "
            f"{len(r.selected):>9}/{r.eligible:<8} {'yes' if r.bound else 'no'}"
        )
    from kpod.training.trainer import slack_budget_warning

    msg = slack_budget_warning(records, stages=len(records), delta_steps=delta_steps)
    if msg:
        print(f"  warning: {msg}")


def _print_summary(metrics: Mapping[str, Any]) -> None:
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    print("\nkpod run: accuracy (95% bootstrap interval)")
    for name in sorted(set(before) | set(after)):
        cells = []
        for label, m in (("before", before.get(name)), ("after", after.get(name))):
            if m:
                cells.append(
                    f"{label} {100 * m['accuracy']:.1f}% [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}]"
                    f" ({m['correct']}/{m['n']})"
                )
        print(f"  {name}: " + "   ".join(cells))
