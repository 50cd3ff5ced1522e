"""The ``kpod run`` configuration: a YAML mapping read into typed sections.

Each section is a dataclass whose fields are the keys it accepts; unknown keys
are errors that name the section. Defaults come from what a section feeds: the
``weighting`` and ``training`` sections pass their keys to
:class:`~kpod.weighting.train.WeightingConfig` and
:class:`~kpod.training.config.KpodConfig`, which own every default; the
``difficulty``, ``clusters`` and ``evaluation`` sections take theirs from
``KpodConfig`` and :func:`kpod.evaluation.evaluate`. Those imports happen when
a config is loaded, never when this module is imported (``kpod --help`` needs
numpy only).

The mapping as written (after ``--set`` overrides and with data paths made
absolute) is kept in :attr:`RunConfig.raw`, and the step fingerprints hash
that, as they did before the sections were typed: run directories cached
earlier stay valid.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kpod.models import KINDS

__all__ = [
    "ClustersSection",
    "DataSection",
    "DifficultySection",
    "EvaluationSection",
    "RunConfig",
    "TrainingSection",
    "WeightingSection",
]

TOP_KEYS = (
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
)
SECTIONS = ("data", "weighting", "difficulty", "clusters", "training", "evaluation")
TEACHER_FILTERS = ("drop", "keep", "off")


def _kpod_default(name: str) -> Any:
    """The default of ``KpodConfig.<name>`` (transformers is imported on first use)."""
    from kpod.training.config import KpodConfig

    f = {f.name: f for f in dataclasses.fields(KpodConfig)}[name]
    return f.default


def _evaluate_default(name: str) -> Any:
    """The default of ``kpod.evaluation.evaluate``'s keyword ``name``."""
    import inspect

    from kpod.evaluation import evaluate

    return inspect.signature(evaluate).parameters[name].default


def _build(cls: type[Any], name: str, raw: Any, source: Path | str) -> Any:
    """``cls(**raw)`` where unknown keys become an error naming the section."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: {name} must be a mapping, got {type(raw).__name__}")
    allowed = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown} in {name}; allowed: {sorted(allowed)}")
    return cls(**copy.deepcopy(dict(raw)))


@dataclass
class DataSection:
    """``data``: the training rationales and the test sets (paths relative to the config)."""

    train: str
    test: dict[str, Any] = field(default_factory=dict)
    format: str = "auto"
    skip_invalid: bool = False
    max_train: int | None = None
    max_test: int | None = None
    teacher_filter: str = "drop"
    num_proc: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.teacher_filter not in TEACHER_FILTERS:
            raise ValueError(
                f"data.teacher_filter must be one of {', '.join(TEACHER_FILTERS)}, got "
                f"{self.teacher_filter!r}"
            )

    def test_files(self) -> dict[str, tuple[str, str]]:
        """Test set name to ``(path, format)``."""
        out = {}
        for name, spec in self.test.items():
            if isinstance(spec, dict):
                out[name] = (spec["path"], spec.get("format", "auto"))
            else:
                out[name] = (spec, "auto")
        return out


@dataclass
class WeightingSection:
    """``weighting``: ``enabled``, ``max_examples``; every other key is a WeightingConfig field."""

    enabled: bool = True
    max_examples: int | None = None
    options: dict[str, Any] = field(default_factory=dict, init=False)

    @classmethod
    def parse(cls, raw: Any, source: Path | str) -> WeightingSection:
        raw = dict(raw or {})
        own = {k: raw.pop(k) for k in ("enabled", "max_examples") if k in raw}
        section = cls(**own)
        section.options = copy.deepcopy(raw)  # checked by WeightingConfig when the step runs
        return section


@dataclass
class DifficultySection:
    """``difficulty``: the no-grad scoring passes of Eq. 8."""

    batch_size: int = field(default_factory=lambda: _kpod_default("difficulty_batch_size"))
    dtype: str = "auto"


@dataclass
class ClustersSection:
    """``clusters``: K-means over question embeddings; ``seed`` defaults to the run's."""

    k: int = field(default_factory=lambda: _kpod_default("n_clusters"))
    seed: int | None = None


@dataclass
class TrainingSection:
    """``training``: KpodConfig fields (checked by KpodConfig when the step runs)."""

    options: dict[str, Any] = field(default_factory=dict)

    def flag(self, name: str) -> bool:
        """A boolean KpodConfig field as this section sets it (KpodConfig's default otherwise)."""
        return bool(self.options.get(name, _kpod_default(name)))


@dataclass
class EvaluationSection:
    """``evaluation``: greedy decoding of the test sets before and after training."""

    before: bool = True
    dtype: str = "auto"
    batch_size: int = field(default_factory=lambda: _evaluate_default("batch_size"))
    max_new_tokens: int = field(default_factory=lambda: _evaluate_default("max_new_tokens"))
    n_resamples: int = field(default_factory=lambda: _evaluate_default("n_resamples"))


@dataclass
class RunConfig:
    """A ``kpod run`` configuration (YAML). Unknown keys are errors."""

    run_dir: str
    data: DataSection
    student: str = "smollm2-135m"
    kind: str = "causal"
    seed: int = 0
    weighting: WeightingSection = field(default_factory=WeightingSection)
    difficulty: DifficultySection = field(default_factory=DifficultySection)
    clusters: ClustersSection = field(default_factory=ClustersSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    source: Path | None = None
    #: the mapping as written, overrides applied and data paths absolute (fingerprints hash it)
    raw: dict[str, Any] = field(default_factory=dict)

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
            set_dotted(raw, key, value)
        unknown = set(raw) - set(TOP_KEYS)
        if unknown:
            raise ValueError(
                f"{path}: unknown top-level keys {sorted(unknown)}; allowed: {sorted(TOP_KEYS)}"
            )
        if "run_dir" not in raw:
            raise ValueError(f"{path}: 'run_dir' is required (where the run's files go)")
        if raw.get("kind", "causal") not in KINDS:
            raise ValueError(f"{path}: kind must be 'causal' or 'seq2seq', got {raw['kind']!r}")
        data = raw.get("data") or {}
        if "train" not in data:
            raise ValueError(f"{path}: data.train (the training rationales file) is required")
        raw = copy.deepcopy(raw)
        raw["data"] = _resolve_paths(data, path.resolve().parent)
        rd = Path(raw["run_dir"])
        raw["run_dir"] = str(rd if rd.is_absolute() else (Path.cwd() / rd))
        return cls(
            run_dir=raw["run_dir"],
            student=raw.get("student", "smollm2-135m"),
            kind=raw.get("kind", "causal"),
            seed=raw.get("seed", 0),
            data=_build(DataSection, "data", raw["data"], path),
            weighting=WeightingSection.parse(raw.get("weighting"), path),
            difficulty=_build(DifficultySection, "difficulty", raw.get("difficulty"), path),
            clusters=_build(ClustersSection, "clusters", raw.get("clusters"), path),
            training=TrainingSection(options=copy.deepcopy(dict(raw.get("training") or {}))),
            evaluation=_build(EvaluationSection, "evaluation", raw.get("evaluation"), path),
            source=path,
            raw=raw,
        )

    def section(self, dotted: str) -> Any:
        """A section (or ``section.key``) as written: what a step's fingerprint covers."""
        if "." in dotted:
            head, key = dotted.split(".", 1)
            return (self.raw.get(head) or {}).get(key)
        if dotted in SECTIONS:
            return self.raw.get(dotted, {})
        return getattr(self, dotted)

    def as_written(self) -> dict[str, Any]:
        """Every top-level key, sections as written (``{}`` when absent): metrics.json's ``run_config``."""
        return {k: self.section(k) for k in sorted(TOP_KEYS)}


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping, creating the mappings on the way."""
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
