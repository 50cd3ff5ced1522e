"""Issue 23's fair test of KPOD against plain CoT: the 2x2 analysis (main effects of the
token weights and of the progression, their interaction), the question-resampling
intervals, the power, and scripts/reproduce_svamp.py's fair setting (plan, data,
archive, tables), all on synthetic archive records whose true effects are known."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from kpod.compare import compare, effects_markdown, factorial, from_record, power
from kpod.stats import bootstrap_interval, detectable_difference, question_bootstrap

ROOT = Path(__file__).resolve().parents[1]
N_Q = 200  # questions per test set


def _bits(x: np.ndarray) -> str:
    return "".join("1" if b else "0" for b in x)


def _flip(rng: np.random.Generator, x: np.ndarray, ups: int, downs: int) -> np.ndarray:
    """``x`` with ``ups`` wrong answers made right and ``downs`` right ones made wrong."""
    y = x.copy()
    zeros, ones = np.flatnonzero(~x), np.flatnonzero(x)
    y[rng.choice(zeros, ups, replace=False)] = True
    y[rng.choice(ones, downs, replace=False)] = False
    return y


def exact_grid(seeds_main: int = 5, seeds_other: int = 3, rng_seed: int = 0) -> list[dict]:
    """Archive records of the 2x2 whose effects are exact in every seed: the token
    weights add 10 of 200 questions (+5 points), the progression moves as many questions
    right as wrong (0), so the interaction is 0. ``svamp`` and ``asdiv`` alike."""
    rng = np.random.default_rng(rng_seed)
    recs = []
    for seed in range(seeds_main):
        bits: dict[str, dict[str, str]] = {v: {} for v in ("cot", "wo-prog", "wo-sig", "kpod")}
        for ds in ("svamp", "asdiv"):
            cot = rng.random(N_Q) < 0.3
            wo_prog = _flip(rng, cot, 10, 0)  # weights only: +10 questions
            wo_sig = _flip(rng, cot, 6, 6)  # progression only: as many right as wrong
            kpod = _flip(rng, wo_prog, 4, 4)  # both
            for v, x in (("cot", cot), ("wo-prog", wo_prog), ("wo-sig", wo_sig), ("kpod", kpod)):
                bits[v][ds] = _bits(x)
        for v, b in bits.items():
            if v in ("cot", "kpod") or seed < seeds_other:
                recs.append(_record(v, seed, b))
    return recs


def _record(variant: str, seed: int, bits: dict[str, str], **extra) -> dict:
    return {
        "variant": variant,
        "seed": seed,
        "setting": "fair",
        "evaluated": "after",
        "ids": {ds: [f"{ds}-{i}" for i in range(len(b))] for ds, b in bits.items()},
        "correct": bits,
        **extra,
    }


def _runs(recs: list[dict]) -> list:
    return [from_record(r, f"{r['variant']}-s{r['seed']}") for r in recs]


def test_factorial_recovers_known_effects_exactly_and_covers_them() -> None:
    effects, notes = factorial(_runs(exact_grid()), sets=["svamp", "asdiv"])
    truth = {"weights": 0.05, "progression": 0.0, "interaction": 0.0}
    assert {(e.name, e.set) for e in effects} == {(n, s) for n in truth for s in ("svamp", "asdiv")}
    for e in effects:
        mean, lo, hi = e.estimate
        assert mean == pytest.approx(truth[e.name], abs=1e-12), e
        assert lo <= truth[e.name] <= hi, e
        # Only the 3 seeds with all four cells take part; each is exact on its own.
        assert [s for s, _ in e.per_seed] == [0, 1, 2]
        assert all(v == pytest.approx(truth[e.name], abs=1e-12) for _, v in e.per_seed)
        assert e.questions == N_Q
    assert any("seeds [3, 4] lack a cell" in n for n in notes)
    table = effects_markdown(
        effects, cell_names={"both": "KPOD", "neither": "CoT", "weights": "w.o.-prog"}
    )
    assert "| weights: ((KPOD - progression) + (w.o.-prog - CoT)) / 2 | svamp | +5.0 [" in table
    assert "| +5.0 / +5.0 / +5.0 | 3 x 200 |" in table


def test_factorial_intervals_cover_the_population_effect() -> None:
    # Random students: question q is right with probability p_q (+0.05 with the token
    # weights; the progression does nothing), independently per seed and cell. The 95%
    # intervals must cover the true effects (+5, 0, 0) in most replications: over 200
    # replications this percentile bootstrap covered them 92.5%, 92.5% and 96% of the time
    # (percentile intervals run slightly narrow); 85% is the floor tested here.
    rng = np.random.default_rng(1)
    truth = {"weights": 0.05, "progression": 0.0, "interaction": 0.0}
    covered = dict.fromkeys(truth, 0)
    reps, n = 100, 300
    for _rep in range(reps):
        p = rng.uniform(0.05, 0.8, size=n)
        recs = []
        for seed in range(3):
            for v, w in (("cot", 0), ("wo-sig", 0), ("wo-prog", 1), ("kpod", 1)):
                x = rng.random(n) < p + 0.05 * w
                recs.append(_record(v, seed, {"svamp": _bits(x)}))
        effects, _ = factorial(_runs(recs), n_resamples=500)
        for e in effects:
            covered[e.name] += e.estimate[1] <= truth[e.name] <= e.estimate[2]
    for name, k in covered.items():
        assert k >= 0.85 * reps, (name, k, reps)


def test_question_bootstrap_does_not_count_repeated_seeds_as_new_questions() -> None:
    rng = np.random.default_rng(2)
    one = (rng.random(150) < 0.4).astype(float)
    same = np.vstack([one] * 5)  # five seeds that answer every question alike
    m, lo, hi = question_bootstrap(same)
    assert m == pytest.approx(one.mean())
    assert (lo, hi) == bootstrap_interval(one, n_resamples=2000)  # as wide as one seed
    # Resampling question-seed pairs would shrink it by about sqrt(5).
    plo, phi = bootstrap_interval(same.ravel(), n_resamples=2000)
    assert (phi - plo) < 0.6 * (hi - lo)
    assert question_bootstrap(np.empty((0, 0))) != question_bootstrap(one)  # nan, not an error


def test_detectable_difference() -> None:
    half, mde = detectable_difference(-0.02, 0.04)
    assert half == pytest.approx(0.03)
    assert mde == pytest.approx(0.03 * (1.959964 + 0.841621) / 1.959964, rel=1e-6)


def test_compare_questions_scheme_and_power() -> None:
    recs = exact_grid()
    cmp = compare(_runs(recs), baseline="cot", scheme="questions")
    kpod = next(g for g in cmp.pooled if g.group == "kpod")
    assert kpod.runs == 5
    assert kpod.difference["svamp"][0] == pytest.approx(0.05)  # exact in every seed
    pw = power(cmp, "kpod")
    lo, hi = kpod.difference["svamp"][1:]
    assert pw["svamp"][0] == pytest.approx((hi - lo) / 2)
    # The default scheme (settings 1 and 2) is unchanged: pairs of question and seed.
    pairs = compare(_runs(recs), baseline="cot")
    assert pairs.scheme == "pairs" and cmp.scheme == "questions"
    with pytest.raises(ValueError, match="scheme"):
        compare(_runs(recs), scheme="seeds")


def test_pooling_by_questions_uses_the_questions_every_seed_has() -> None:
    a = _record("cot", 0, {"svamp": "1100"})
    b = _record("cot", 1, {"svamp": "101"})  # one question fewer
    cmp = compare(_runs([a, b]), scheme="questions")
    assert cmp.pooled[0].accuracy["svamp"][0] == pytest.approx(4 / 6)  # 110 and 101
    assert any("left out of the pooled interval" in w for w in cmp.warnings)


# ------------------------------------------------------------- the reproduction script
def _load(monkeypatch, tmp_path: Path):
    spec = importlib.util.spec_from_file_location(
        "reproduce_svamp", ROOT / "scripts" / "reproduce_svamp.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "reproduce_svamp", mod)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "ARCHIVE", tmp_path / "docs" / "reproduction")
    monkeypatch.setattr(mod, "REPRO", tmp_path / "runs" / "repro")
    return mod


def test_plan_runs_cot_and_kpod_seeds_first(monkeypatch, tmp_path) -> None:
    mod = _load(monkeypatch, tmp_path)
    plan = mod.fair_plan()
    assert plan[:10] == [(v, s) for s in range(5) for v in ("kpod", "cot")]
    assert len(plan) == 22 and len(set(plan)) == 22
    counts = {v: sum(1 for w, _ in plan if w == v) for v in mod.FAIR_SEEDS}
    assert counts == mod.FAIR_SEEDS
    assert counts["kpod"] == counts["cot"] == 5 and min(counts.values()) == 3
    # Every 2x2 cell of a seed comes before the w.o.-div / w.o.-sig-dif runs.
    last_2x2 = max(i for i, (v, _) in enumerate(plan) if v in ("wo-sig", "wo-prog"))
    assert all(v in ("wo-div", "wo-sig-dif") for v, _ in plan[last_2x2 + 1 :])
    assert mod.fair_plan(["cot"], [0, 4]) == [("cot", 0), ("cot", 4)]
    assert mod.fair_plan(main_seeds=6)[22:] == [("kpod", 5), ("cot", 5)]


def test_fair_config_has_the_papers_proportions(monkeypatch, tmp_path) -> None:
    import argparse

    mod = _load(monkeypatch, tmp_path)
    args = argparse.Namespace(
        splits=None, max_tokens=None, epochs=None, stages=None, delta_steps=None,
        token_weight_norm="none", max_new_tokens=256,
    )  # fmt: skip
    cfg = mod.fair_config(args)
    t = cfg["training"]
    assert (t["num_train_epochs"], t["stages"]) == (8, 4)  # T = half the epochs
    args.epochs = 10
    assert mod.fair_config(args)["training"]["stages"] == 5
    assert t["lr_scheduler_type"] == "constant_with_warmup"
    assert t["delta_steps"] == mod.FAIR_DELTA_STEPS
    assert cfg["weighting"] == mod.FAIR_WEIGHTING_OVERRIDES
    assert "max_prefixes" not in cfg["weighting"]  # every prefix (WeightingConfig's default)
    assert "max_test" not in cfg["data"] and "max_train" not in cfg["data"]
    # CoT differs from KPOD only by its switches: same epochs, steps, schedule, data.
    core = mod._core
    assert core(cfg, "cot") == core(cfg, "kpod")


def test_first_agreeing_rationale_per_question(monkeypatch, tmp_path) -> None:
    mod = _load(monkeypatch, tmp_path)
    rows = [
        {"id": "q1-0", "question": "1+1?", "rationale": "1+1=3. The answer is 3.", "answer": "2"},
        {"id": "q1-1", "question": "1+1?", "rationale": "1+1=2. The answer is 2.", "answer": "2"},
        {"id": "q1-2", "question": "1+1?", "rationale": "So 2. The answer is 2.", "answer": "2"},
        {"id": "q2-0", "question": "2+2?", "rationale": "2+2=5. The answer is 5.", "answer": "4"},
        {"id": "q3-0", "question": "3+3?", "rationale": "3+3=6. The answer is 6.", "answer": "6"},
    ]
    kept = mod.first_agreeing(rows)
    assert [r["id"] for r in kept] == ["q1-1", "q3-0"]


def _fake_run(mod, name: str, seed: int, after: dict[str, str], gsm8k: str | None = None):
    run = mod.repro_dir(mod.FAIR) / f"{name}-s{seed}"
    for step, sets in (("eval_after", after), ("eval_gsm8k", {"gsm8k": gsm8k} if gsm8k else {})):
        for ds, bits in sets.items():
            (run / step).mkdir(parents=True, exist_ok=True)
            rows = [
                json.dumps({"id": f"{ds}-{i}", "correct": b == "1", "prediction": "1"})
                for i, b in enumerate(bits)
            ]
            (run / step / f"predictions-{ds}.jsonl").write_text("\n".join(rows) + "\n")
    (run / "train").mkdir(parents=True, exist_ok=True)
    (run / "train" / ".kpod-step.json").write_text(json.dumps({"seconds": 600.0}))
    cfg = {"run_dir": str(run), "seed": seed, "training": {"num_train_epochs": 8}}
    (run / "config.yaml").write_text(json.dumps(cfg))
    module = run / "weighting" / "module"
    module.mkdir(parents=True)
    gates = {"gates": {"mean_weight": 0.52, "keep_ratio": 0.5}, "warnings": ["w"], "classes": {}}
    (module / "metrics.json").write_text(json.dumps(gates))
    return run


def test_archive_and_tables_of_the_fair_setting(monkeypatch, tmp_path) -> None:
    mod = _load(monkeypatch, tmp_path)
    assert mod.fair_report().startswith("No run of the fair test has finished: 0 of 22")
    _fake_run(mod, "kpod", 0, {"svamp": "1100", "asdiv": "10"}, gsm8k="111")
    _fake_run(mod, "cot", 0, {"svamp": "1000", "asdiv": "10"})
    written = mod.archive(mod.repro_dir(mod.FAIR), mod.FAIR)
    assert sorted(p.name for p in written) == ["cot-s0.json", "kpod-s0.json"]
    rec = json.loads((mod.archive_dir(mod.FAIR) / "kpod-s0.json").read_text())
    assert rec["setting"] == "fair" and "delta_steps" not in rec
    assert rec["correct"] == {"svamp": "1100", "asdiv": "10", "gsm8k": "111"}
    assert rec["train_seconds"] == 600.0
    assert rec["weighting"] == {
        "gates": {"mean_weight": 0.52, "keep_ratio": 0.5},
        "warnings": ["w"],
    }
    text = mod.fair_report()
    assert text.startswith("2 of 22 planned runs are archived (kpod-s0, cot-s0). Partial grid")
    row = next(line for line in text.splitlines() if line.startswith("| kpod | 0 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # variant, seed, SVAMP, ASDiv, GSM8K, then - CoT (3 sets), - KPOD (3 sets), train s
    assert cells[2].startswith("50.0") and cells[4].startswith("100.0")
    assert cells[5].startswith("+25.0") and cells[7] == "" and cells[8:11] == ["", "", ""]
    assert "2x2 effects: not yet (no archived run of wo-prog, wo-sig)" in text
    assert "| 0 | +0.5200 | +0.5000 | n/a | n/a | 1 |" in text  # KPOD seed 0's gates
    assert "Power" in text and "SVAMP: KPOD - CoT pooled over 1 seed: the interval is +-" in text


def test_fair_report_of_a_full_grid(monkeypatch, tmp_path) -> None:
    mod = _load(monkeypatch, tmp_path)
    out = mod.archive_dir(mod.FAIR)
    out.mkdir(parents=True)
    for rec in exact_grid():
        (out / f"{rec['variant']}-s{rec['seed']}.json").write_text(json.dumps(rec))
    text = mod.fair_report()
    assert "16 of 22 planned runs" in text and "Partial grid: missing wo-div-s0" in text
    assert "| weights: ((KPOD - w.o.-sig) + (w.o.-prog - CoT)) / 2 | SVAMP | +5.0 [" in text
    assert "| progression: ((KPOD - w.o.-prog) + (w.o.-sig - CoT)) / 2 | SVAMP | +0.0 [" in text
    pooled = text[text.index("Pooled over seeds") :]
    kpod = next(line for line in pooled.splitlines() if line.startswith("| kpod | 5 |"))
    assert "+5.0 [" in kpod  # - CoT, paired per question and seed
    assert "seeds [3, 4] lack a cell" in text


def test_a_changed_config_is_refused(monkeypatch, tmp_path) -> None:
    import argparse

    mod = _load(monkeypatch, tmp_path)
    args = argparse.Namespace(
        splits=None, max_tokens=None, epochs=None, stages=None, delta_steps=None,
        token_weight_norm="none", max_new_tokens=256,
    )  # fmt: skip
    cfg = mod.fair_config(args)
    out = mod.archive_dir(mod.FAIR)
    out.mkdir(parents=True)
    rec = _record("cot", 0, {"svamp": "10"}, config={**cfg, "seed": 0})
    for section, field, value in mod.switches("cot"):
        rec["config"][section][field] = value
    (out / "cot-s0.json").write_text(json.dumps(rec))
    mod.check_fair_setting(args)  # the same config: fine
    args.epochs = 6
    with pytest.raises(SystemExit, match="another config"):
        mod.check_fair_setting(args)


def test_kpod_compare_against_two_baselines_with_the_2x2(tmp_path, capsys) -> None:
    from kpod.cli import main

    for rec in exact_grid():
        (tmp_path / f"{rec['variant']}-s{rec['seed']}.json").write_text(json.dumps(rec))
    args = ["compare", str(tmp_path), "--baseline", "cot", "--baseline", "kpod"]
    args += ["--scheme", "questions", "--factorial", "cot", "wo-prog", "wo-sig", "kpod"]
    assert main([*args, "--name", "cot=CoT", "--name", "kpod=KPOD"]) == 0
    captured = capsys.readouterr()
    head = next(line for line in captured.out.splitlines() if line.startswith("| run | seed |"))
    assert "- CoT, svamp | - CoT, asdiv | - KPOD, svamp | - KPOD, asdiv | train s |" in head
    row = next(line for line in captured.out.splitlines() if line.startswith("| wo-prog | 0 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4].startswith("+5.0") and cells[6].startswith("+0.0")  # weights only = KPOD
    assert "| weights: ((kpod - wo-sig) + (wo-prog - cot)) / 2 | svamp | +5.0 [" in captured.out
    assert "seeds [3, 4] lack a cell" in captured.err


def _namespace(**kw):
    import argparse

    base = dict(
        setting="fair", splits=None, max_tokens=None, epochs=None, stages=None, delta_steps=2,
        token_weight_norm="none", max_new_tokens=256, gsm8k=False, variants=None, seeds=None,
        main_seeds=0, max_runs=None, retrain_equivalent=False,
    )  # fmt: skip
    base.update(kw)
    return argparse.Namespace(**base)


def test_run_fair_follows_the_plan_skips_archived_runs_and_stops(monkeypatch, tmp_path) -> None:
    mod = _load(monkeypatch, tmp_path)
    calls: list[tuple[str, int]] = []

    def fake_run(name, seed, args):
        calls.append((name, seed))
        out = mod.archive_dir(mod.FAIR) / f"{name}-s{seed}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_record(name, seed, {"svamp": "10"})))

    monkeypatch.setattr(mod, "run_variant", fake_run)
    monkeypatch.setattr(mod, "fair_train_file", lambda args: None)
    monkeypatch.setattr(mod, "check_fair_setting", lambda args: None)
    monkeypatch.setattr(mod, "archive", lambda base, setting: [])
    fake_run("kpod", 0, None)  # archived before: skipped
    calls.clear()
    mod.run_fair(_namespace(max_runs=3))
    assert calls == [("cot", 0), ("kpod", 1), ("cot", 1)]
    calls.clear()
    # A schedule-only variant first gets the KPOD run of its seed it is checked against.
    mod.run_fair(_namespace(variants=["wo-div"], seeds=[4], max_runs=1))
    assert calls == []  # w.o.-div has 3 seeds: seed 4 is not in the plan
    mod.run_fair(_namespace(variants=["wo-div"], seeds=[2]))
    assert calls == [("kpod", 2), ("wo-div", 2)]
    assert mod.fair_status().startswith("6 of 22 planned runs are archived")  # + kpod-s2, wo-div-s2


def test_preview_reports_where_the_budget_binds(monkeypatch, tmp_path, capsys) -> None:
    import types

    import kpod.pipeline

    mod = _load(monkeypatch, tmp_path)
    bound = {1: [], 2: [1, 2, 3], 3: [1, 2, 3]}
    advanced = {1: [0], 2: [0], 3: []}  # delta_s = 3 binds but advances no question

    class FakeRun:
        def __init__(self, cfg):
            self.delta = cfg

        def schedule_preview(self):
            return [
                types.SimpleNamespace(
                    stage=t,
                    bound=t in bound[self.delta],
                    selected=advanced[self.delta] if t < 3 else [0],
                    eligible=2,
                )
                for t in range(1, 5)
            ]

    class FakeConfig:
        @staticmethod
        def load(path, overrides):
            return overrides["training.delta_steps"]

    monkeypatch.setattr(kpod.pipeline, "Run", FakeRun)
    monkeypatch.setattr(kpod.pipeline, "RunConfig", FakeConfig)
    monkeypatch.setattr(mod.subprocess, "run", lambda *a, **k: None)
    assert mod.preview(_namespace()) == 0
    out = capsys.readouterr().out
    assert "delta_s = 2 (configured): bound at stages [1, 2, 3]" in out
    assert "ready to run" in out
    assert mod.preview(_namespace(delta_steps=1)) == 1
    assert "pass --delta-steps 2" in capsys.readouterr().out
    assert mod.preview(_namespace(delta_steps=3)) == 1  # bound at 3 stages, chose at 1
    cfg = (mod.repro_dir(mod.FAIR) / "kpod-s0" / "config.yaml").read_text()
    assert "lr_scheduler_type: constant_with_warmup" in cfg and "seed: 0" in cfg


def test_gsm8k_is_evaluated_by_a_valid_kpod_eval_command(monkeypatch, tmp_path) -> None:
    from kpod.cli import build_parser

    mod = _load(monkeypatch, tmp_path)
    cfg = mod.fair_config(_namespace())
    cfg["seed"] = 3
    seen: list[list[str]] = []
    monkeypatch.setattr(mod.subprocess, "run", lambda cmd, **kw: seen.append(cmd))
    run_dir = tmp_path / "runs" / "repro" / "fair" / "kpod-s3"
    mod.evaluate_gsm8k(run_dir, cfg, "after")
    mod.evaluate_gsm8k(run_dir, cfg, "before")
    after, before = (build_parser().parse_args(cmd[3:]) for cmd in seen)
    assert after.model == str(run_dir / "train") and before.model == "smollm2-135m"
    assert after.data == [f"gsm8k={mod.fair_splits_dir(_namespace()) / 'gsm8k_test.jsonl'}"]
    assert (after.max_new_tokens, after.batch_size, after.seed) == (256, 48, 3)
    assert after.out == str(run_dir / "eval_gsm8k") and before.out.endswith("eval_gsm8k_before")


def test_the_config_check_ignores_where_the_checkout_lies(monkeypatch, tmp_path) -> None:
    mod = _load(monkeypatch, tmp_path)
    cfg = mod.fair_config(_namespace())
    moved = json.loads(json.dumps(cfg).replace(str(tmp_path), "/elsewhere/kpod"))
    assert moved != cfg and mod._core(moved, "kpod") == mod._core(cfg, "kpod")


def test_table_only_command_lines(monkeypatch, tmp_path, capsys) -> None:
    mod = _load(monkeypatch, tmp_path)
    for argv, expected in (
        ([], "No archived run of this setting."),
        (["--delta-steps", "2"], "No archived run of this setting."),
        (["--setting", "fair"], "No run of the fair test has finished"),
    ):
        monkeypatch.setattr(sys, "argv", ["reproduce_svamp.py", "--table-only", *argv])
        assert mod.main() == 0
        assert expected in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["reproduce_svamp.py", "--setting", "fair", "--plan"])
    assert mod.main() == 0
    assert " 1. kpod-s0: pending" in capsys.readouterr().out
