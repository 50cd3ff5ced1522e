"""`kpod run` end to end on a tiny saved student: every step, caching, resume, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from kpod.cli import main
from kpod.pipeline import STEPS, RunConfig

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kpod.testing import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    out = tmp_path_factory.mktemp("student")
    tiny_causal_lm(tok).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _config(tmp: Path, student: Path, **training: object) -> Path:
    import yaml

    cfg = {
        "run_dir": str(tmp / "run"),
        "student": str(student),
        "kind": "causal",
        "data": {
            "train": str(EXAMPLES / "gsm8k_train.jsonl"),
            "max_train": 20,
            "test": {"gsm8k": str(EXAMPLES / "gsm8k_test.jsonl")},
            "max_test": 4,
        },
        "weighting": {
            "num_train_epochs": 1,
            "per_device_train_batch_size": 4,
            "hidden_size": 16,
            "max_prefixes": 2,
            # the module holds out 8 rationales for early stopping and its gates
            "max_examples": 20,
            "adapt_epochs": 0.5,
            "adapt_mask_epochs": 0.5,
            "save_strategy": False,  # YAML 1.1 reads a bare `no` so
        },
        "clusters": {"k": 2},
        "training": {
            "num_train_epochs": 2,
            "per_device_train_batch_size": 4,
            "learning_rate": 1e-3,
            "save_strategy": "epoch",
            **training,
        },
        "evaluation": {"batch_size": 4, "max_new_tokens": 8, "n_resamples": 50},
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_run_end_to_end_then_cached(tmp_path: Path, student_dir: Path, capsys) -> None:
    cfg = _config(tmp_path, student_dir)
    assert main(["run", str(cfg)]) == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    for when in ("before", "after"):
        m = metrics[when]["gsm8k"]
        assert m["n"] == 4 and 0.0 <= m["accuracy"] <= 1.0
        assert m["ci_low"] <= m["accuracy"] <= m["ci_high"]
    preds = (run / "eval_after" / "predictions-gsm8k.jsonl").read_text().splitlines()
    assert len(preds) == 4
    stages = [json.loads(x) for x in (run / "train" / "kpod_stages.jsonl").read_text().splitlines()]
    assert [s["stage"] for s in stages] == [1, 2]
    html = (run / "report.html").read_text()
    assert "Budget D(t)" in html and "id='metrics'" in html and "Token weights" in html
    assert html.count("<tr><td>") == len(stages) and "budget bound" in html
    for step in STEPS[:-1]:
        assert (run / step / ".kpod-step.json").is_file(), step
    capsys.readouterr()

    # Unchanged inputs: every step is skipped.
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert all(f"{step}: cached" in out for step in STEPS[:-1]), out

    # A training change redoes training and what follows it, nothing upstream.
    assert main(["run", str(cfg), "--set", "training.beta=0.0"]) == 0
    out = capsys.readouterr().out
    for step in ("data", "weighting", "scores", "difficulty", "clusters", "eval_before"):
        assert f"{step}: cached" in out
    for step in ("train", "eval_after"):
        assert f"{step}: cached" not in out and f"{step}: done" in out
        assert json.loads((run / step / ".kpod-step.json").read_text())["resumed"] is False

    # A step interrupted after it started (no completion marker) resumes, and says so.
    (run / "eval_after" / ".kpod-step.json").unlink()
    assert main(["run", str(cfg), "--set", "training.beta=0.0"]) == 0
    out = capsys.readouterr().out
    assert "train: cached" in out and "eval_after: done" in out and "resumed" in out
    assert json.loads((run / "eval_after" / ".kpod-step.json").read_text())["resumed"] is True


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_dir: x\ndata: {train: a.jsonl}\ntrainig: {}\n")
    with pytest.raises(ValueError, match=r"unknown top-level keys.*trainig"):
        RunConfig.load(bad)
    bad.write_text("data: {train: a.jsonl}\n")
    with pytest.raises(ValueError, match="run_dir"):
        RunConfig.load(bad)
    with pytest.raises(FileNotFoundError):
        RunConfig.load(tmp_path / "missing.yaml")


def test_sections_are_typed_with_the_defaults_of_what_they_feed(tmp_path: Path) -> None:
    import dataclasses
    import inspect

    from kpod.evaluation import evaluate
    from kpod.training.config import KpodConfig

    path = tmp_path / "c.yaml"
    path.write_text("run_dir: x\ndata: {train: a.jsonl}\nclusters: {k: 3}\n")
    cfg = RunConfig.load(path)
    kpod_defaults = {f.name: f.default for f in dataclasses.fields(KpodConfig)}
    assert cfg.difficulty.batch_size == kpod_defaults["difficulty_batch_size"]
    assert cfg.clusters.k == 3 and cfg.clusters.seed is None
    params = inspect.signature(evaluate).parameters
    for name in ("batch_size", "max_new_tokens", "n_resamples"):
        assert getattr(cfg.evaluation, name) == params[name].default
    assert cfg.data.teacher_filter == "drop" and cfg.weighting.enabled
    # fingerprints hash the sections as written, not the filled-in defaults
    assert cfg.section("clusters") == {"k": 3} and cfg.section("evaluation") == {}
    path.write_text("run_dir: x\ndata: {train: a.jsonl}\nevaluation: {batch_sise: 4}\n")
    with pytest.raises(ValueError, match=r"unknown keys \['batch_sise'\] in evaluation"):
        RunConfig.load(path)
    path.write_text("run_dir: x\ndata: {train: a.jsonl, teacher_filter: maybe}\n")
    with pytest.raises(ValueError, match="teacher_filter must be one of"):
        RunConfig.load(path)


def test_data_prepare_and_the_data_step_write_the_same_examples(
    tmp_path: Path, student_dir: Path
) -> None:
    from kpod.data import PREPARED_COLUMNS
    from kpod.data.prepared import load_prepared
    from kpod.pipeline import Run

    path = _config(tmp_path, student_dir)  # max_train 20, teacher_filter drop (the default)
    out = tmp_path / "step"
    out.mkdir()
    Run(RunConfig.load(path)).step_data(out)
    step = load_prepared(out / "dataset")
    cli = tmp_path / "cli"
    argv = ["data", "prepare", str(EXAMPLES / "gsm8k_train.jsonl"), "--tokenizer"]
    argv += [str(student_dir), "--out", str(cli), "--limit", "20", "--filter", "drop"]
    assert main(argv) == 0
    prepared = load_prepared(cli)
    assert len(step) == len(prepared) > 0
    for name in PREPARED_COLUMNS:
        assert step[name] == prepared[name], name


def test_max_tokens_drops_long_training_examples(tmp_path: Path, student_dir: Path, capsys) -> None:
    import yaml

    from kpod.data.prepared import load_prepared
    from kpod.pipeline import Run

    path = _config(tmp_path, student_dir)
    full_out = tmp_path / "full"
    full_out.mkdir()
    Run(RunConfig.load(path)).step_data(full_out)
    lengths = sorted(len(x) for x in load_prepared(full_out / "dataset")["input_ids"])
    limit = lengths[len(lengths) // 2]
    keep = sum(n <= limit for n in lengths)
    assert 0 < keep < len(lengths)

    raw = yaml.safe_load(path.read_text())
    raw["data"]["max_tokens"] = limit
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "capped"
    out.mkdir()
    capsys.readouterr()
    Run(RunConfig.load(path)).step_data(out)
    kept = load_prepared(out / "dataset")["input_ids"]
    assert len(kept) == keep and max(len(x) for x in kept) <= limit
    assert f"dropped {len(lengths) - keep} of {len(lengths)}" in capsys.readouterr().out

    raw["data"]["max_tokens"] = 1
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="max_tokens=1 drops every"):
        Run(RunConfig.load(path)).step_data(tmp_path)


def test_until_stops_early_and_previews_the_schedule_training_follows(
    tmp_path: Path, student_dir: Path, capsys
) -> None:
    from kpod.pipeline import Run

    cfg = _config(tmp_path, student_dir)
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="--until clusters"):
        Run(RunConfig.load(cfg)).schedule_preview()
    with pytest.raises(ValueError, match="unknown step 'trian'"):
        Run(RunConfig.load(cfg)).run(until="trian")

    assert main(["run", str(cfg), "--until", "clusters"]) == 0
    out = capsys.readouterr().out
    assert "stopped after 'clusters'" in out and "curriculum preview" in out, out
    assert (run / "clusters" / ".kpod-step.json").is_file()
    assert not (run / "eval_before").exists() and not (run / "train").exists()
    preview = Run(RunConfig.load(cfg)).schedule_preview()
    assert [r.stage for r in preview] == [1]  # T = half of 2 epochs

    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "clusters: cached" in out and "train: done" in out
    logged = [json.loads(x) for x in (run / "train" / "kpod_stages.jsonl").read_text().splitlines()]
    for want, got in zip(preview, logged, strict=False):
        assert got == want.to_dict()  # the logged line is the previewed record
