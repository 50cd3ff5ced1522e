"""The steps of ``kpod run`` and the run that chains them.

Each step reads the dataset its upstream step saved and saves one with its
own column added, so every example travels as one row from the data step to
training::

    data        records -> teacher filter -> segment + tokenize    (prepared columns)
    weighting   the keypoint weighting module (Eqs. 2-7)            (a module, no dataset)
    scores      data + ``token_weights``
    difficulty  scores + ``step_difficulty`` (Eq. 8)
    clusters    difficulty + ``cluster`` (K-means over question embeddings)
    eval_before accuracy of the pretrained student
    train       progressive distillation on the clusters dataset
    eval_after  accuracy of the distilled student
    report      metrics.json and report.html

:func:`prepare_training_data` is the data step's work after reading; ``kpod
data prepare`` calls it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpod.pipeline.cache import StepCache, file_digest, fingerprint
from kpod.pipeline.config import RunConfig

if TYPE_CHECKING:
    from kpod.data.filtering import FilterReport
    from kpod.schedule import StageResult

__all__ = ["DEPENDS", "STEPS", "Run", "prepare_training_data", "run"]

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

#: step -> the config sections and upstream steps its fingerprint covers
DEPENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "data": (("student", "data"), ()),
    "weighting": (("weighting",), ("data",)),
    "scores": (("weighting",), ("data", "weighting")),
    "difficulty": (("difficulty", "training.uniform_difficulty"), ("scores",)),
    "clusters": (("clusters",), ("difficulty",)),
    "eval_before": (("evaluation",), ("data",)),
    "train": (("training",), ("clusters",)),
    "eval_after": (("evaluation",), ("train",)),
    "report": ((), ("eval_before", "eval_after")),
}


def prepare_training_data(
    records: Any,
    tokenizer: Any,
    *,
    kind: str,
    teacher_filter: str = "drop",
    max_tokens: int | None = None,
    keep_columns: Sequence[str] = (),
    num_proc: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Any, FilterReport | None]:
    """Student-ready examples from validated records: teacher filter, segmentation, tokenization.

    ``records``: a ``datasets.Dataset`` or a list of record dicts. ``teacher_filter``:
    ``"drop"`` rationales whose answer disagrees with the gold one, ``"keep"``
    them (with ``teacher_answer`` / ``teacher_agrees`` columns) or ``"off"``.
    ``max_tokens`` drops (never truncates: the loss and the evaluation rely on
    the answer part) examples longer than that many tokens, and says how many.
    ``keep_columns`` are carried over from the records (e.g. ``choices``).
    Returns the prepared dataset and the filter report (None when off).
    """
    import datasets

    from kpod.data import filter_by_answer, prepare_examples

    report = None
    if teacher_filter != "off":
        records, report = filter_by_answer(records, keep_disagreeing=teacher_filter == "keep")
        log(report.summary())
        if not len(records):
            raise ValueError(
                "teacher filtering left no examples (keep disagreeing rationales or turn the "
                "filter off)"
            )
    if not isinstance(records, datasets.Dataset):
        cols = ("id", "question", "rationale", "answer", *keep_columns)
        records = datasets.Dataset.from_list([{k: r[k] for k in cols} for r in records])
    ds = prepare_examples(
        records, tokenizer, kind=kind, num_proc=num_proc, keep_columns=list(keep_columns)
    )
    if max_tokens:
        limit = int(max_tokens)
        before = len(ds)
        ds = ds.filter(lambda ex: len(ex["input_ids"]) <= limit)
        log(
            f"dropped {before - len(ds)} of {before} training examples longer than "
            f"max_tokens={limit} tokens (question + rationale + answer)"
        )
        if len(ds) == 0:
            raise ValueError(f"max_tokens={limit} drops every training example; raise it")
    return ds, report


class Run:
    """A run directory: the cached steps over one :class:`RunConfig`."""

    def __init__(self, config: RunConfig, *, force: tuple[str, ...] = ()) -> None:
        from kpod import __version__

        bad = set(force) - set(STEPS)
        if bad:
            raise ValueError(f"unknown steps {sorted(bad)} in --force; steps are {list(STEPS)}")
        self.config = config
        self.dir = Path(config.run_dir)
        self.cache = StepCache(self.dir, force=force)
        self.version = __version__
        self._tokenizer: Any = None

    @property
    def fingerprints(self) -> dict[str, str]:
        return self.cache.fingerprints

    @property
    def timings(self) -> dict[str, float]:
        return self.cache.timings

    def fingerprint(self, step: str) -> str:
        """What ``step``'s cache is keyed on: its config sections, upstream fingerprints, inputs."""
        sections, upstream = DEPENDS[step]
        payload: dict[str, Any] = {
            "kpod": self.version,
            "step": step,
            "kind": self.config.kind,
            "seed": self.config.seed,
            "config": {s: self.config.section(s) for s in sections},
            "upstream": {u: self.fingerprints[u] for u in upstream},
        }
        if step == "data":
            files = [self.config.data.train]
            files += [path for path, _ in self.config.data.test_files().values()]
            payload["files"] = {f: file_digest(f) for f in files}
        return fingerprint(payload)

    def step_dir(self, step: str) -> Path:
        return self.cache.step_dir(step)

    # ------------------------------------------------------------ shared inputs
    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from kpod.models import load_tokenizer

            self._tokenizer = load_tokenizer(self.config.student)
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
        needs = not (t.flag("equal_token_weights") and t.flag("uniform_difficulty"))
        return self.config.weighting.enabled and needs

    def test_sets(self) -> dict[str, list[dict[str, Any]]]:
        from kpod.data import read_records

        limit = self.config.data.max_test
        sets: dict[str, list[dict[str, Any]]] = {}
        for name, (path, fmt) in self.config.data.test_files().items():
            rows = [dict(r) for r in read_records(path, format=fmt, require_rationale=False)]
            sets[name] = rows[:limit] if limit else rows
        return sets

    # ------------------------------------------------------------ steps
    def step_data(self, out: Path) -> None:
        from kpod.data import SkipReport, load_records

        d = self.config.data
        report = SkipReport()
        ds = load_records(
            d.train,
            format=d.format,
            skip_invalid=d.skip_invalid,
            report=report,
            cache_dir=str(out / "cache"),
        )
        if d.skip_invalid and len(report):
            report.write(out / "skipped.jsonl")
            print(
                f"kpod run: data: skipped {len(report)} invalid records (see {out / 'skipped.jsonl'})"
            )
        if d.max_train:
            ds = ds.select(range(min(int(d.max_train), len(ds))))
        ds, _ = prepare_training_data(
            ds,
            self.tokenizer,
            kind=self.config.kind,
            teacher_filter=d.teacher_filter,
            max_tokens=d.max_tokens,
            num_proc=d.num_proc,
            log=lambda msg: print(f"kpod run: data: {msg}"),
        )
        self.save_dataset(ds, out)
        (out / "test_sets.json").write_text(json.dumps(self.test_sets()), encoding="utf-8")

    def step_weighting(self, out: Path) -> None:
        if not self.weights_enabled:
            (out / "disabled").write_text("equal token weights: no module trained\n")
            return
        from kpod.training.config import normalize_yaml_strategies
        from kpod.weighting.train import WeightingConfig, train_weighting

        w = self.config.weighting
        opts = normalize_yaml_strategies(w.options)
        opts.setdefault("student", self.config.student)
        opts.setdefault("seed", self.config.seed)
        opts["output_dir"] = str(out / "module")
        cfg = WeightingConfig(**opts)
        ds = self.load_dataset("data")
        if w.max_examples and len(ds) > int(w.max_examples):
            # The module sees a seeded random subset; every example is scored later.
            ds = ds.shuffle(seed=self.config.seed).select(range(int(w.max_examples)))
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
            self.config.training.flag("uniform_difficulty")
            or "token_weights" not in ds.column_names
        )
        ds = add_step_difficulty(
            ds,
            self.student(dtype=self.config.difficulty.dtype),
            kind=self.config.kind,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=int(self.config.difficulty.batch_size),
            uniform=uniform,
        )
        self.save_dataset(ds, out)

    def step_clusters(self, out: Path) -> None:
        from kpod.data import add_clusters

        c = self.config.clusters
        ds = add_clusters(
            self.load_dataset("difficulty"),
            model=self.student(),
            k=int(c.k),
            seed=int(c.seed if c.seed is not None else self.config.seed),
        )
        self.save_dataset(ds, out)

    def _evaluate(self, out: Path, model_path: str | None) -> None:
        from kpod.evaluation import evaluate_many

        e = self.config.evaluation
        sets = json.loads((self.step_dir("data") / "test_sets.json").read_text(encoding="utf-8"))
        model = self.student(model_path, dtype=e.dtype)
        evaluate_many(
            model,
            self.tokenizer,
            sets,
            output_dir=out,
            kind=self.config.kind,
            batch_size=int(e.batch_size),
            max_new_tokens=int(e.max_new_tokens),
            n_resamples=int(e.n_resamples),
            seed=self.config.seed,
        )

    def step_eval_before(self, out: Path) -> None:
        if not self.config.evaluation.before:
            (out / "metrics.json").write_text("{}\n")
            return
        self._evaluate(out, None)

    def training_config(self, out: Path | None = None) -> Any:
        """The KpodConfig of the train step (its defaults filled in), writing to ``out``."""
        from kpod.training.config import config_from_dict

        opts = dict(self.config.training.options)
        opts.setdefault("seed", self.config.seed)
        opts["kind"] = self.config.kind
        opts["output_dir"] = str(out if out is not None else self.step_dir("train"))
        return config_from_dict(opts)

    def step_train(self, out: Path) -> None:
        from kpod.training.trainer import train_kpod

        ds = self.load_dataset("clusters")
        cfg = self.training_config(out)
        train_kpod(self.student(), self.tokenizer, ds, cfg, out, resume_from_checkpoint=True)

    def schedule_preview(self) -> list[StageResult]:
        """Stages 1..T of the curriculum the train step will follow, computed without training.

        Needs the clusters step done. Records as in ``kpod_stages.jsonl`` (given
        steps, D(t), H(t), ``bound``); empty under ``training.no_progression``.
        """
        from kpod.training.curriculum import CurriculumSchedule

        for step in ("difficulty", "clusters"):
            if not self.cache.marker(step).is_file():
                raise RuntimeError(
                    f"the schedule preview needs the {step!r} step; run `kpod run CONFIG "
                    f"--until clusters` first"
                )
        ds = self.load_dataset("clusters")
        cfg = self.training_config()
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
            "run_config": self.config.as_written(),
        }
        (self.dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        stages_path = self.step_dir("train") / "kpod_stages.jsonl"
        stages = []
        if stages_path.is_file():
            for line in stages_path.read_text(encoding="utf-8").splitlines():
                stages.append(StageResult.from_dict(json.loads(line)))
        trained_on = self.load_dataset("clusters")
        clusters = np.asarray(trained_on["cluster"], dtype=np.int64)
        fragment, weights = None, None
        if "token_weights" in trained_on.column_names:
            weights = rationale_weights(trained_on.select_columns(["token_weights", "step_ids"]))
            from kpod.weighting.view import render_fragment

            fragment = render_fragment(
                trained_on.select(range(min(8, len(trained_on)))), self.tokenizer
            )
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
            self.cache.run(step, self.fingerprint(step), getattr(self, f"step_{step}"))
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
    from kpod.pipeline.console import print_schedule, print_summary

    cfg = RunConfig.load(config_path, overrides)
    job = Run(cfg, force=force)
    result = job.run(until)
    if until is not None and not result:
        print(f"kpod run: stopped after {until!r} (--until)", flush=True)
        if STEPS.index("clusters") <= STEPS.index(until) < STEPS.index("train"):
            print_schedule(job.schedule_preview(), job.training_config().delta_steps)
        return result
    print_summary(result)
    return result
