"""Reproduction on SVAMP with SmolLM2-135M: zero-shot, plain CoT distillation, KPOD and
the four ablations of the paper's Table 2, several seeds; SVAMP test in distribution and
ASDiv test out of distribution. Not part of CI (hours on a CPU).

Issue 23's fair test of KPOD against plain CoT (docs/REPRODUCTION.md, first section):

    python scripts/reproduce_svamp.py --setting fair --preview     # where the budget binds
    python scripts/reproduce_svamp.py --setting fair --plan        # the 22 runs, in order
    python scripts/reproduce_svamp.py --setting fair [--gsm8k] [--max-runs N]
    python scripts/reproduce_svamp.py --setting fair --table-only  # tables from the archive

The earlier settings 1 and 2 (delta_s = 1 and 2, T = 3 in 4 epochs):

    python scripts/reproduce_svamp.py --seeds 0 1            # everything
    python scripts/reproduce_svamp.py --variants kpod cot --seeds 0 --epochs 2 --max-train 200
    python scripts/reproduce_svamp.py --table-only           # rebuild docs/REPRODUCTION.md's table

Each variant is a `kpod run` directory under runs/repro/<variant>-s<seed>/; the steps
that a variant shares with KPOD (data, weighting module, token weights, clusters,
zero-shot evaluation) are copied from the KPOD run of the same seed, and the
pipeline's fingerprints confirm that they match. Interrupt and rerun at will: every
finished step and training checkpoint is kept. Results (accuracy with 95% bootstrap
intervals, paired bootstrap differences against KPOD, run times) go to
runs/repro/results.md, to be copied into docs/REPRODUCTION.md.

runs/ is not committed and does not outlive the machine, so every finished
evaluation is also archived, small and in the repository, as
docs/reproduction/delta<N>/<variant>-s<seed>.json (question ids, per-question
correctness, extracted answers, train time, stage summary, config). The tables are
built from that archive by kpod.compare (the library of `kpod compare`; `kpod compare
docs/reproduction/delta2 --baseline kpod` gives the same figures), so `--table-only`
works on a fresh clone.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, object]] = {
    "kpod": {},
    "cot": {
        "training.equal_token_weights": True,
        "training.uniform_difficulty": True,
        "training.no_progression": True,
        "training.no_diversity": True,
    },
    "wo-sig": {"training.equal_token_weights": True},
    "wo-sig-dif": {"training.uniform_difficulty": True},
    "wo-prog": {"training.no_progression": True},
    "wo-div": {"training.no_diversity": True},
    # KPOD with the token weights rescaled to mean 1 per example (not in the paper:
    # the raw weights, mean about 0.5, also shrink the rationale loss against the
    # answer's; docs/training.md).
    "kpod-mean": {"training.token_weight_norm": "mean"},
}
# Variants beyond the paper's, run only when named.
EXTRA = ("kpod-mean",)
SHARED_STEPS = ("data", "weighting", "scores", "difficulty", "clusters", "eval_before")
# Variants that change only the curriculum's inputs (step difficulties, beta). When
# their schedule equals KPOD's stage by stage, they train exactly what KPOD trains
# (the loss, data order and seed are the same), so they are not retrained.
SCHEDULE_ONLY = ("wo-sig-dif", "wo-div")
SAME_SCHEDULE = "same-schedule.json"
# Variants without progression do not depend on delta_steps: another setting's
# table borrows them from the default one.
NO_PROGRESSION = ("cot", "wo-prog")
REPRO = ROOT / "runs" / "repro"
ARCHIVE = ROOT / "docs" / "reproduction"

# ---------------------------------------------------------------- the fair test (issue 23)
# `--setting fair`: the paper's proportions (T = half the epochs), one learning-rate
# schedule for every variant (constant after warm-up: every epoch, the full-rationale
# ones included, trains at the same rate for every variant; the Trainer's linear decay
# to 0 gave KPOD's one full-rationale epoch 25% to 0% of the peak rate), CoT trained
# for the same epochs and steps, the 2x2 (CoT, w.o.-sig, w.o.-prog, KPOD) plus
# w.o.-div and w.o.-sig-dif, 5 seeds for CoT and KPOD and 3 for the others.
FAIR = "fair"
FAIR_EPOCHS = 8
# Two steps per stage: with one, the budget binds at no stage of T = 3 or T = 4 (the
# setting-1 preview: H(t) < D(t) at every stage); with two it bound at 2 of 3 stages in
# setting 2. `--preview` shows the budget of the real data for delta_s = 1..3.
FAIR_DELTA_STEPS = 2
FAIR_MAX_TOKENS = 256
FAIR_SEEDS = {"kpod": 5, "cot": 5, "wo-sig": 3, "wo-prog": 3, "wo-div": 3, "wo-sig-dif": 3}
# The weighting module runs at WeightingConfig's defaults (predictor adapted by CoT
# fine-tuning, target_keep 0.5, every prefix) except for these sizes, which the lead
# sets from the real weighting run (scripts/real_weighting_run.py, docs/weighting.md).
FAIR_WEIGHTING_OVERRIDES: dict[str, object] = {
    # As the SVAMP weighting run of docs/weighting.md (scripts/real_weighting_run.py
    # --variant cot --adapt-mask-epochs 0.5 --epochs 2), whose gates passed.
    "max_length": 256,
    "per_device_train_batch_size": 8,
    "num_train_epochs": 2,
    "adapt_mask_epochs": 0.5,
    "learning_rate": 1e-3,
    "lr_scheduler_type": "constant",
    "init_keep": 0.9,
    "train_sampling_strategy": "group_by_length",
}
# Test sets of the fair test: SVAMP test in distribution, the whole ASDiv test split
# out of distribution, GSM8K test (`--gsm8k`, evaluated by `kpod eval` after the run,
# so adding it later changes no step of a finished run).
FAIR_SETS = ("svamp", "asdiv", "gsm8k")
GSM8K_DIRS = {"after": "eval_gsm8k", "before": "eval_gsm8k_before"}
# The 2x2: (token weights, progression) of each cell.
CELLS = {"neither": "cot", "weights": "wo-prog", "progression": "wo-sig", "both": "kpod"}


def switches(name: str) -> list[tuple[str, str, object]]:
    """(config section, field, value) of every switch variant ``name`` sets."""
    out = []
    for key, value in VARIANTS[name].items():
        section, field = key.split(".", 1)
        out.append((section, field, value))
    return out


def repro_dir(setting: int | str) -> Path:
    """runs/repro for the default delta_steps = 1, runs/repro/delta<N> otherwise, and
    runs/repro/fair for the fair test."""
    if isinstance(setting, str):
        return REPRO / setting
    return REPRO if setting == 1 else REPRO / f"delta{setting}"


def setting_of(args: argparse.Namespace) -> int | str:
    """The setting a command line selects: "fair", or the delta_steps of settings 1 and 2."""
    return FAIR if getattr(args, "setting", None) == FAIR else int(args.delta_steps or 1)


def base_config(args: argparse.Namespace) -> dict:
    splits = Path(args.splits)
    return {
        "run_dir": "runs/repro/base",
        "student": "smollm2-135m",
        "kind": "causal",
        "data": {
            "train": str(splits / "svamp_train.jsonl"),
            "max_train": args.max_train,
            "teacher_filter": "drop",  # GPT-3.5 rationales whose answer disagrees with gold
            "test": {
                "svamp": str(splits / "svamp_test.jsonl"),
                "asdiv": str(splits / "asdiv_test.jsonl"),
            },
            "max_test": args.max_test,
            "max_tokens": args.max_tokens,
        },
        # The whole pretrained student, frozen, is the answer predictor: truncated
        # SmolLM2 layers cannot predict the answer at all (docs/weighting.md).
        "weighting": {
            "max_examples": args.weighting_examples,
            "max_prefixes": 2,
            "max_length": 256,
            "hidden_size": 128,
            "init_keep": 0.9,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 8,
            "learning_rate": 1.0e-3,
            "save_strategy": "no",
        },
        "clusters": {"k": 5},
        "training": {
            "num_train_epochs": args.epochs,
            "stages": args.stages,
            "token_weight_norm": args.token_weight_norm,
            **({"delta_steps": args.delta_steps} if args.delta_steps != 1 else {}),
            "per_device_train_batch_size": 8,
            "learning_rate": 5.0e-5,
            "warmup_steps": 10,
            "bf16": "auto",
            "logging_steps": 10,
            "save_strategy": "epoch",
            "save_total_limit": 1,
        },
        "evaluation": {"batch_size": 48, "max_new_tokens": args.max_new_tokens},
    }


def fair_config(args: argparse.Namespace) -> dict:
    """The run config of the fair test (issue 23), before the seed and the variant's switches."""
    splits = fair_splits_dir(args)
    return {
        "run_dir": "runs/repro/fair/base",
        "student": "smollm2-135m",
        "kind": "causal",
        "data": {
            # The paper's 700-question train split, one MCC-KD rationale per question:
            # the first of its ten whose answer agrees with the gold one (fair_train_file).
            "train": str(repro_dir(FAIR) / "svamp_train.jsonl"),
            "teacher_filter": "drop",  # a no-op here: every kept rationale agrees
            "test": {
                "svamp": str(splits / "svamp_test.jsonl"),
                "asdiv": str(splits / "asdiv_test.jsonl"),
            },
            "max_tokens": args.max_tokens or FAIR_MAX_TOKENS,
        },
        "weighting": dict(FAIR_WEIGHTING_OVERRIDES),
        "clusters": {"k": 5},
        "training": {
            "num_train_epochs": args.epochs or FAIR_EPOCHS,
            # T = half the epochs (the paper), whatever --epochs says, unless --stages does.
            "stages": args.stages or max(1, (args.epochs or FAIR_EPOCHS) // 2),
            "delta_steps": args.delta_steps or FAIR_DELTA_STEPS,
            "token_weight_norm": args.token_weight_norm,
            "per_device_train_batch_size": 8,
            "learning_rate": 5.0e-5,
            # Constant after warm-up, for every variant (see FAIR above).
            "lr_scheduler_type": "constant_with_warmup",
            "warmup_steps": 10,
            # Batches of similar length: a random batch of these rationales is 41.6%
            # padding, a length-grouped one 10.0% (benches/bench_padding.py); every
            # variant samples the same way.
            "train_sampling_strategy": "group_by_length",
            "bf16": "auto",
            "logging_steps": 10,
            "save_strategy": "epoch",
            "save_total_limit": 1,
        },
        "evaluation": {"batch_size": 48, "max_new_tokens": args.max_new_tokens},
    }


def fair_splits_dir(args: argparse.Namespace) -> Path:
    # Absolute: kpod run reads relative data paths from the config file's folder.
    return Path(args.splits).resolve() if args.splits else repro_dir(FAIR) / "splits"


def first_agreeing(rows: list[dict]) -> list[dict]:
    """One rationale per question: the first (in file order) whose answer agrees with the
    gold answer. Rationale ids are ``<question id>-<j>`` (``kpod data splits``)."""
    from kpod.data import filter_by_answer

    kept, _ = filter_by_answer([dict(r) for r in rows])
    first: dict[str, dict] = {}
    for r in kept:
        first.setdefault(str(r["id"]).rsplit("-", 1)[0], r)
    keys = ("id", "question", "rationale", "answer", "choices")
    return [{k: r[k] for k in keys if k in r} for r in first.values()]


def fair_train_file(args: argparse.Namespace) -> Path:
    """runs/repro/fair/svamp_train.jsonl from the splits (``kpod data splits --multi all``,
    written when missing): every question of the 700 with an agreeing rationale, once."""
    splits = fair_splits_dir(args)
    needed = ["svamp_train.jsonl", "svamp_test.jsonl", "asdiv_test.jsonl"]
    if args.gsm8k:
        needed.append("gsm8k_test.jsonl")
    for name in ("svamp", "asdiv", "gsm8k"):
        if any(n.startswith(name) and not (splits / n).is_file() for n in needed):
            cmd = ["data", "splits", name, "--multi", "all", "--out", str(splits)]
            subprocess.run([sys.executable, "-m", "kpod", *cmd], check=True, cwd=ROOT)
    src = splits / "svamp_train.jsonl"
    # Lines of JSON, split on "\n" only: rationales hold other Unicode line breaks.
    rows = [json.loads(x) for x in src.read_text(encoding="utf-8").split("\n") if x.strip()]
    questions = {str(r["id"]).rsplit("-", 1)[0] for r in rows}
    if len(rows) == len(questions):
        raise SystemExit(
            f"{src} holds one rationale per question (written with --multi first?); the fair "
            "test picks the first agreeing of the ten: remove it or pass --splits to a folder "
            "written by `kpod data splits svamp --multi all`"
        )
    out = repro_dir(FAIR) / "svamp_train.jsonl"
    kept = first_agreeing(rows)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.write_text(text, encoding="utf-8")
    print(f"fair: {len(kept)} of {len(questions)} questions have an agreeing rationale ({out})")
    return out


def fair_plan(
    variants: list[str] | None = None, seeds: list[int] | None = None, main_seeds: int = 0
) -> list:
    """The fair test's runs in the order they run: CoT and KPOD seed by seed (KPOD first,
    its steps before training are shared), then the other cells of the 2x2 (w.o.-sig,
    w.o.-prog), then w.o.-div and w.o.-sig-dif. ``variants`` / ``seeds`` filter it;
    ``main_seeds`` raises the number of CoT and KPOD seeds above FAIR_SEEDS' (their
    extra seeds come last)."""
    counts = dict(FAIR_SEEDS)
    plan: list[tuple[str, int]] = []
    for group in (("kpod", "cot"), ("wo-sig", "wo-prog"), ("wo-div", "wo-sig-dif")):
        for seed in range(max(counts[v] for v in group)):
            plan += [(v, seed) for v in group if seed < counts[v]]
    for seed in range(counts["kpod"], main_seeds):
        plan += [("kpod", seed), ("cot", seed)]
    return [
        (v, s)
        for v, s in plan
        if (variants is None or v in variants) and (seeds is None or s in seeds)
    ]


def _core(cfg: dict, name: str) -> dict:
    """A run config without what differs between the runs of one setting: run_dir, seed,
    evaluation.before and the variant's own switches; data files by name only (the
    checkout's path differs between machines; the data step hashes their content)."""
    out = json.loads(re.sub(r'"[^"]*/([^"/]+\.jsonl)"', r'"\1"', json.dumps(cfg)))
    out.pop("run_dir", None)
    out.pop("seed", None)
    out.get("evaluation", {}).pop("before", None)
    for section, field, _ in switches(name):
        out.get(section, {}).pop(field, None)
    return out


def check_fair_setting(args: argparse.Namespace) -> None:
    """Refuses to add runs whose config differs from the fair test's archived runs."""
    mine = _core(fair_config(args), "kpod")
    for path in sorted(archive_dir(FAIR).glob("*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        if rec.get("evaluated") == "before":
            continue
        if _core(rec.get("config") or {}, rec["variant"]) != mine:
            raise SystemExit(
                f"{path.relative_to(ROOT)} was run with another config than this command's "
                "(options such as --epochs, --delta-steps or the weighting overrides changed): "
                "the fair test compares runs of one config only. Restore the options, or move "
                f"{archive_dir(FAIR).relative_to(ROOT)} and {repro_dir(FAIR).relative_to(ROOT)} "
                "aside to start over."
            )


def evaluate_gsm8k(run_dir: Path, cfg: dict, when: str) -> None:
    """GSM8K test by ``kpod eval`` into ``run_dir/eval_gsm8k[_before]`` (the trained
    student, or for ``when="before"`` the pretrained one), with the run's decoding."""
    out = run_dir / GSM8K_DIRS[when]
    if (out / "predictions-gsm8k.jsonl").is_file() and (out / "metrics.json").is_file():
        return
    model = str(run_dir / "train") if when == "after" else cfg["student"]
    test = Path(cfg["data"]["test"]["svamp"]).parent / "gsm8k_test.jsonl"
    e = cfg["evaluation"]
    cmd = [
        sys.executable, "-m", "kpod", "eval", "--model", model, "--tokenizer", cfg["student"],
        "--data", f"gsm8k={test}", "--out", str(out), "--kind", cfg["kind"],
        "--batch-size", str(e["batch_size"]), "--max-new-tokens", str(e["max_new_tokens"]),
        "--seed", str(cfg["seed"]),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT)


def run_variant(name: str, seed: int, args: argparse.Namespace) -> Path:
    setting = setting_of(args)
    base = repro_dir(setting)
    run_dir = base / f"{name}-s{seed}"
    cfg = fair_config(args) if setting == FAIR else base_config(args)
    cfg["run_dir"] = str(run_dir)
    cfg["seed"] = seed
    # Zero-shot is greedy decoding of the pretrained student: the same for every
    # seed, so only seed 0 evaluates it.
    cfg["evaluation"]["before"] = seed == 0
    for section, field, value in switches(name):
        cfg[section][field] = value
    kpod_dir = base / f"kpod-s{seed}"
    # Steps before training come from the KPOD run of this setting, else of any
    # other run with this seed (KPOD runs first); the pipeline reuses them only if
    # their fingerprints match, and recomputes them otherwise. The fair test shares
    # steps only within its own runs.
    if setting == FAIR:
        runs = sorted(base.glob(f"*-s{seed}"))
    else:
        runs = [*sorted(REPRO.glob(f"*-s{seed}")), *sorted(REPRO.glob(f"delta*/*-s{seed}"))]
    runs.sort(key=lambda d: (d != kpod_dir, d.name != kpod_dir.name))
    sources = [d for d in runs if d != run_dir and d.is_dir()]
    for step in SHARED_STEPS:
        dst = run_dir / step
        for src_dir in sources:
            src = src_dir / step
            if (src / ".kpod-step.json").is_file() and not dst.exists():
                shutil.copytree(src, dst)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    trained = (run_dir / "eval_after" / ".kpod-step.json").is_file()
    if name in SCHEDULE_ONLY and not trained and not args.retrain_equivalent:
        same = same_schedule(name, path, kpod_dir)
        if same is not None:
            (run_dir / SAME_SCHEDULE).write_text(json.dumps(same, indent=2) + "\n")
            print(f"{run_dir.name}: same schedule as {kpod_dir.name} at all stages; not retrained")
            return run_dir
    (run_dir / SAME_SCHEDULE).unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "kpod", "run", str(path)], check=True, cwd=ROOT)
    if setting == FAIR and args.gsm8k:
        evaluate_gsm8k(run_dir, cfg, "after")
        if seed == 0 and name == "kpod":
            evaluate_gsm8k(run_dir, cfg, "before")
    return run_dir


def same_schedule(name: str, path: Path, kpod_dir: Path) -> dict | None:
    """Evidence that variant ``name`` (config ``path``) follows KPOD's logged schedule.

    Runs the variant's pipeline up to its clusters (its own step difficulties),
    previews its curriculum without training and compares every question's
    given-step count at every stage with KPOD's ``kpod_stages.jsonl``. ``None``
    when KPOD has not finished, the settings differ beyond the variant's switches,
    or any count differs.
    """
    log = kpod_dir / "train" / "kpod_stages.jsonl"
    if not (kpod_dir / "eval_after" / ".kpod-step.json").is_file() or not log.is_file():
        return None
    mine = yaml.safe_load(path.read_text(encoding="utf-8"))
    theirs = yaml.safe_load((kpod_dir / "config.yaml").read_text(encoding="utf-8"))
    for cfg in (mine, theirs):
        cfg.pop("run_dir", None)
        for section, field, _ in switches(name):
            cfg[section].pop(field, None)
    if mine != theirs:
        return None
    cmd = [sys.executable, "-m", "kpod", "run", str(path), "--until", "clusters"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    from kpod.pipeline import Run, RunConfig

    preview = Run(RunConfig.load(path)).schedule_preview()
    logged = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    if len(logged) < len(preview):
        return None
    for mine_rec, kpod_rec in zip(preview, logged, strict=False):
        if not np.array_equal(mine_rec.given_steps, np.asarray(kpod_rec["given_steps"])):
            return None
    return {
        "as": kpod_dir.name,
        "stages": len(preview),
        "bound_stages": [r.stage for r in preview if r.bound],
        "checked": "given-step count of every question at every stage 1..T",
    }


def correctness(run_dir: Path, step: str, name: str) -> np.ndarray | None:
    path = run_dir / step / f"predictions-{name}.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return np.array([bool(r["correct"]) for r in rows])


SETS = ("svamp", "asdiv")
ORDER = ["zero-shot", "cot", "kpod", "kpod-mean", "wo-sig", "wo-sig-dif", "wo-prog", "wo-div"]


def _finished(base: Path) -> list[tuple[str, int, Path, str, str | None]]:
    """(label, seed, run dir, eval step, same-as) for every finished evaluation in ``base``.

    A variant not retrained because its schedule equals KPOD's (``same-schedule.json``)
    gets the KPOD run's directory and ``same-as`` names it.
    """
    out: list[tuple[str, int, Path, str, str | None]] = []
    for run_dir in base.glob("*-s*"):
        name, seed = run_dir.name.rsplit("-s", 1)
        if name not in VARIANTS or not seed.isdigit():
            continue
        if name == "kpod" and correctness(run_dir, "eval_before", "svamp") is not None:
            out.append(("zero-shot", int(seed), run_dir, "eval_before", None))
        if correctness(run_dir, "eval_after", "svamp") is not None:
            out.append((name, int(seed), run_dir, "eval_after", None))
        elif (run_dir / SAME_SCHEDULE).is_file():
            same = json.loads((run_dir / SAME_SCHEDULE).read_text(encoding="utf-8"))
            kpod_dir = base / same["as"]
            if correctness(kpod_dir, "eval_after", "svamp") is not None:
                out.append((name, int(seed), kpod_dir, "eval_after", same["as"]))
    return out


def archive_dir(setting: int | str) -> Path:
    """docs/reproduction/delta<N> (settings 1 and 2) or docs/reproduction/fair."""
    return ARCHIVE / (setting if isinstance(setting, str) else f"delta{setting}")


def _predictions(run_dir: Path, step: str, ds: str) -> Path:
    """Where a run's predictions on ``ds`` are: the pipeline's evaluation step, or for
    GSM8K in the fair test the ``kpod eval`` run after it."""
    path = run_dir / step / f"predictions-{ds}.jsonl"
    if not path.is_file() and ds == "gsm8k":
        when = "before" if step == "eval_before" else "after"
        path = run_dir / GSM8K_DIRS[when] / "predictions-gsm8k.jsonl"
    return path


def archive(base: Path, setting: int | str) -> list[Path]:
    """Writes the archive record of every finished evaluation under ``base``."""
    written = []
    for label, seed, run_dir, step, same_as in _finished(base):
        rec: dict = {"variant": label, "seed": seed}
        if isinstance(setting, str):
            rec["setting"] = setting
        else:
            rec["delta_steps"] = setting
        # kpod compare pairs a pretrained-student evaluation with any baseline seed.
        rec["evaluated"] = "before" if step == "eval_before" else "after"
        rec["run_dir"] = str(run_dir.relative_to(ROOT))
        if same_as is not None:
            rec["same_schedule_as"] = same_as
        for ds in FAIR_SETS if setting == FAIR else SETS:
            path = _predictions(run_dir, step, ds)
            if not path.is_file():
                continue
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            rec.setdefault("ids", {})[ds] = [str(r["id"]) for r in rows]
            rec.setdefault("correct", {})[ds] = "".join("1" if r["correct"] else "0" for r in rows)
            rec.setdefault("prediction", {})[ds] = [r["prediction"] for r in rows]
        marker = run_dir / "train" / ".kpod-step.json"
        if step == "eval_after" and same_as is None and marker.is_file():
            m = json.loads(marker.read_text(encoding="utf-8"))
            rec["train_seconds"] = round(float(m["seconds"]), 1)
            rec["train_resumed"] = bool(m.get("resumed", False))
        stages = run_dir / "train" / "kpod_stages.jsonl"
        if step == "eval_after" and stages.is_file():
            rec["stages"] = []
            for line in stages.read_text(encoding="utf-8").splitlines():
                st = json.loads(line)
                summary = {k: v for k, v in st.items() if not isinstance(v, list)}
                summary["advanced"] = len(st.get("selected", []))
                rec["stages"].append(summary)
        module = run_dir / "weighting" / "module" / "metrics.json"
        if setting == FAIR and step == "eval_after" and module.is_file():
            # Whether this run's token weights carried signal (kpod.weighting.gates).
            m = json.loads(module.read_text(encoding="utf-8"))
            rec["weighting"] = {k: m[k] for k in ("gates", "warnings") if k in m}
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        cfg.pop("run_dir", None)
        rec["config"] = cfg
        out = archive_dir(setting) / f"{label}-s{seed}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(rec, indent=1, sort_keys=True) + "\n"
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            out.write_text(text, encoding="utf-8")
            written.append(out)
    return written


def _records(setting: int | str) -> list[dict]:
    """Archived records of a setting, plus, for setting 2, setting 1's runs without
    progression (the fair test borrows nothing)."""
    recs = [json.loads(p.read_text()) for p in sorted(archive_dir(setting).glob("*.json"))]
    if setting not in (1, FAIR):
        recs += [
            json.loads(p.read_text())
            for p in sorted(archive_dir(1).glob("*.json"))
            if p.stem.rsplit("-s", 1)[0] in NO_PROGRESSION
        ]
    return sorted(recs, key=lambda r: (ORDER.index(r["variant"]), r["seed"]))


# Display names of the tables in docs/REPRODUCTION.md.
SET_NAMES = {"svamp": "SVAMP", "asdiv": "ASDiv (OOD)", "gsm8k": "GSM8K (OOD)"}
SHORT_SET_NAMES = {"asdiv": "ASDiv", "gsm8k": "GSM8K"}


def _runs(setting: int | str) -> list:  # -> list[kpod.compare.RunResult]
    from kpod.compare import from_record

    return [from_record(rec, f"{rec['variant']}-s{rec['seed']}") for rec in _records(setting)]


def _sets(runs: list) -> list[str]:
    """The test sets any run has, in FAIR_SETS order (GSM8K only once evaluated)."""
    return [ds for ds in FAIR_SETS if any(ds in r.correct for r in runs)]


def comparison(setting: int | str, baseline: str = "kpod"):  # -> kpod.compare.Comparison
    """The archived runs of a setting compared by ``kpod compare``'s library.

    Settings 1 and 2: against KPOD, pooled intervals over question-seed pairs;
    ``kpod compare docs/reproduction/delta<N> --baseline kpod`` computes the same
    (plus, for N != 1, the borrowed CoT / w.o.-prog records of delta1). The fair
    test: against ``baseline``, pooled intervals resampling questions
    (``kpod compare docs/reproduction/fair --baseline cot --baseline kpod --scheme
    questions``).
    """
    from kpod.compare import compare

    runs = _runs(setting)
    # Without the baseline in the archive (yet) the tables have accuracies and no differences.
    base = baseline if any(r.label == baseline for r in runs) else None
    if not runs:
        return None
    if setting == FAIR:
        return compare(runs, baseline=base, sets=_sets(runs), scheme="questions")
    return compare(runs, baseline=base, sets=SETS)


def stage_table(setting: int | str) -> str:
    """Questions advanced / eligible at each curriculum stage 1..T of every archived run
    whose stages record eligibility ("" when none does: runs without progression)."""
    from kpod.compare import stage_markdown

    cmp = comparison(setting)
    if cmp is None:
        return ""
    return stage_markdown(cmp, label_column="variant", source="from the archive")


def report(setting: int | str) -> str:
    """What ``--table-only`` prints and ``results.md`` holds: stages, then accuracies."""
    if setting == FAIR:
        return fair_report()
    stages = stage_table(setting)
    return (stages + "\n" if stages else "") + table(setting)


def table(setting: int | str = 1) -> str:
    """Per-run rows, then each variant pooled over its seeds, both against KPOD."""
    from kpod.compare import accuracy_markdown

    if setting == FAIR:
        return fair_report()
    cmp = comparison(setting)
    if cmp is None:
        return "No archived run of this setting.\n"
    return accuracy_markdown(
        cmp,
        set_names=SET_NAMES,
        short_set_names={"asdiv": "ASDiv"},
        baseline_name="KPOD",
        label_column="variant",
    )


def fair_status() -> str:
    """Which runs of the fair test's plan are archived, as a sentence."""
    done = {
        (r["variant"], r["seed"]) for r in _records(FAIR) if r.get("evaluated", "after") == "after"
    }
    main = max([s + 1 for v, s in done if v in ("kpod", "cot")], default=0)
    plan = fair_plan(main_seeds=main)
    finished = [f"{v}-s{s}" for v, s in plan if (v, s) in done]
    missing = [f"{v}-s{s}" for v, s in plan if (v, s) not in done]
    if not finished:
        return (
            f"No run of the fair test has finished: 0 of {len(plan)} planned runs are "
            f"archived in docs/reproduction/fair/. Next: {', '.join(missing[:4])}.\n"
        )
    text = f"{len(finished)} of {len(plan)} planned runs are archived ({', '.join(finished)})."
    if missing:
        text += f" Partial grid: missing {', '.join(missing)}."
    return text + "\n"


def fair_report() -> str:
    """The fair test's tables from docs/reproduction/fair/: status, stages, accuracies
    with paired differences against CoT and against KPOD, the 2x2 effects and the power."""
    from kpod.compare import (
        effects_markdown,
        factorial,
        multi_baseline_markdown,
        power_markdown,
        stage_markdown,
    )

    parts = [fair_status()]
    runs = _runs(FAIR)
    if not runs:
        return "\n".join(parts)
    sets = _sets(runs)
    cmps = [(name, comparison(FAIR, v)) for name, v in (("CoT", "cot"), ("KPOD", "kpod"))]
    present = [(name, c) for name, c in cmps if c is not None and c.baseline == name.lower()]
    first = present[0][1] if present else comparison(FAIR)
    stages = stage_markdown(first, label_column="variant", source="from the archive")
    if stages:
        parts.append(stages)
    if present:
        parts.append(
            multi_baseline_markdown(
                present,
                set_names=SET_NAMES,
                short_set_names=SHORT_SET_NAMES,
                label_column="variant",
            )
        )
    else:
        from kpod.compare import accuracy_markdown

        parts.append(accuracy_markdown(first, set_names=SET_NAMES, label_column="variant"))
    gates = weighting_table()
    if gates:
        parts.append(gates)
    labels = {r.label for r in runs}
    if set(CELLS.values()) <= labels:
        effects, notes = factorial(
            runs,
            neither=CELLS["neither"],
            weights=CELLS["weights"],
            progression=CELLS["progression"],
            both=CELLS["both"],
            sets=sets,
        )
        names = {"both": "KPOD", "progression": "w.o.-sig", "weights": "w.o.-prog"}
        names["neither"] = "CoT"
        table = effects_markdown(effects, set_names=SET_NAMES, cell_names=names)
        parts.append(
            "2x2 effects (points; per-question contrasts paired by seed and question id, "
            "pooled over the seeds that have all four cells; 95% intervals resample "
            "questions, every seed of a drawn question kept):\n\n" + table
        )
        parts += [f"Note: {n}\n" for n in notes]
    else:
        missing = sorted(set(CELLS.values()) - labels)
        parts.append(f"2x2 effects: not yet (no archived run of {', '.join(missing)}).\n")
    vs_cot = next((c for name, c in present if name == "CoT"), None)
    if vs_cot is not None and "kpod" in labels:
        power = power_markdown(
            vs_cot, "kpod", set_names=SET_NAMES, group_name="KPOD", baseline_name="CoT"
        )
        if power:
            parts.append(
                "Power (the smallest difference these intervals detect; target: no wider "
                "than +-3 points on SVAMP and ASDiv):\n\n" + power
            )
    return "\n".join(parts)


# Gates of the weighting module shown per seed (kpod.weighting.gates), when recorded.
GATES = ("mean_weight", "keep_ratio", "informativeness_gap", "class_margin")


def weighting_table() -> str:
    """The weighting module's gates of each seed (from its KPOD run's record): whether
    the token weights carried signal in the runs compared. "" when none is recorded."""
    rows = []
    for rec in _records(FAIR):
        w = rec.get("weighting") or {}
        gates = w.get("gates") or {}
        if rec["variant"] != "kpod" or rec.get("evaluated") == "before" or not gates:
            continue
        cells = [str(rec["seed"])]
        for key in GATES:
            v = gates.get(key)
            cells.append(f"{v:+.4f}" if isinstance(v, int | float) else "n/a")
        cells.append(str(len(w.get("warnings") or [])))
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return ""
    head = ["seed", *GATES, "warnings"]
    lines = [
        "Weighting module of each seed (its gates, kpod.weighting.gates; warnings in the records):",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
        *rows,
    ]
    return "\n".join(lines) + "\n"


def preview(args: argparse.Namespace) -> int:
    """Runs KPOD seed 0's pipeline up to its clusters, prints its curriculum preview (``kpod
    run --until clusters``), then the stages where the budget binds for delta_s = 1, 2, 3,
    and whether the configured delta_s binds at half the stages or more."""
    from kpod.pipeline import Run, RunConfig

    setting = setting_of(args)
    run_dir = repro_dir(setting) / "kpod-s0"
    cfg = fair_config(args) if setting == FAIR else base_config(args)
    cfg.update(run_dir=str(run_dir), seed=0)
    cfg["evaluation"]["before"] = True
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    cmd = [sys.executable, "-m", "kpod", "run", str(path), "--until", "clusters"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    configured = int(cfg["training"].get("delta_steps", 1))
    stages = int(cfg["training"].get("stages") or int(cfg["training"]["num_train_epochs"]) // 2)
    print(f"\npreview: stages where the budget binds (T = {stages}), by delta_s:")
    ok = {}
    for delta in (1, 2, 3):
        recs = Run(RunConfig.load(path, {"training.delta_steps": delta})).schedule_preview()
        bound = [r.stage for r in recs if r.bound]
        # A bound stage that advances no question (H(t-1) already above D(t)) chooses
        # nothing either: only stages where the knapsack picks some questions count.
        ok[delta] = 2 * len([r for r in recs if r.bound and len(r.selected)]) >= stages
        cells = ", ".join(f"{len(r.selected)}/{r.eligible}" for r in recs)
        mark = " (configured)" if delta == configured else ""
        print(
            f"  delta_s = {delta}{mark}: bound at stages {bound or 'none'}; advanced/eligible {cells}"
        )
    if ok.get(configured):
        print(
            f"preview: delta_s = {configured} binds, and chooses, at half the stages or more: "
            "ready to run"
        )
        return 0
    good = [d for d, v in ok.items() if v]
    hint = f"pass --delta-steps {good[0]}" if good else "no delta_s of 1-3 does"
    print(
        f"preview: delta_s = {configured} binds (advancing some questions) at fewer than half "
        f"the stages; {hint}"
    )
    return 1


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--setting",
        default=None,
        choices=[FAIR],
        help="fair: issue 23's test (8 epochs, T = 4, constant learning rate after warm-up, "
        "the whole plan in order; runs/repro/fair, docs/reproduction/fair). Default: settings "
        "1 and 2 by --delta-steps",
    )
    ap.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=list(VARIANTS),
        help="default: the paper's variants (kpod-mean only when named); with --setting fair "
        "a filter on the plan",
    )
    ap.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="default 0 1; with --setting fair a filter on the plan",
    )
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default 6; fair 8)")
    ap.add_argument("--stages", type=int, default=None, help="T (default: half the epochs)")
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="drop training examples longer than this (question + rationale + answer tokens; "
        f"fair: {FAIR_MAX_TOKENS})",
    )
    ap.add_argument("--max-new-tokens", type=int, default=256, help="generation cap at test time")
    ap.add_argument(
        "--weighting-examples", type=int, default=None, help="cap on the weighting module's data"
    )
    ap.add_argument(
        "--token-weight-norm",
        default="none",
        choices=["none", "mean"],
        help="token weights in the loss: raw (none, the paper) or per-example mean 1",
    )
    ap.add_argument("--max-train", type=int, default=None, help="cap on training rationales")
    ap.add_argument("--max-test", type=int, default=None, help="cap on test questions per set")
    ap.add_argument(
        "--splits",
        default=None,
        help="kpod data splits output (default runs/splits; fair: runs/repro/fair/splits, "
        "written with --multi all)",
    )
    ap.add_argument(
        "--delta-steps",
        type=int,
        default=None,
        help="steps a selected question moves per stage (default 1; fair: "
        f"{FAIR_DELTA_STEPS}); runs of delta_steps N != 1 go to runs/repro/deltaN/",
    )
    ap.add_argument(
        "--retrain-equivalent",
        action="store_true",
        help="train w.o.-sig-dif / w.o.-div even when their schedule equals KPOD's",
    )
    ap.add_argument("--gsm8k", action="store_true", help="fair: also evaluate on GSM8K test")
    ap.add_argument("--plan", action="store_true", help="fair: print the ordered runs and stop")
    ap.add_argument(
        "--preview",
        action="store_true",
        help="run KPOD seed 0 up to its clusters and print where the budget binds",
    )
    ap.add_argument(
        "--max-runs",
        type=int,
        default=None,
        help="fair: stop after this many runs of the plan that were not archived yet",
    )
    ap.add_argument(
        "--main-seeds",
        type=int,
        default=0,
        help="fair: run CoT and KPOD at this many seeds (default and minimum "
        f"{FAIR_SEEDS['kpod']}); the extra seeds come after the rest of the plan",
    )
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    setting = setting_of(args)
    if setting == FAIR:
        args.delta_steps = args.delta_steps or FAIR_DELTA_STEPS
    else:
        args.delta_steps = args.delta_steps or 1
        args.epochs = args.epochs or 6
        args.splits = args.splits or str(ROOT / "runs" / "splits")
        setting = args.delta_steps
    base = repro_dir(setting)
    if setting == FAIR and args.plan:
        return print_plan(args)
    if args.preview:
        if setting == FAIR:
            fair_train_file(args)
        return preview(args)
    if not args.table_only and setting == FAIR:
        run_fair(args)
    elif not args.table_only:
        if not (Path(args.splits) / "svamp_train.jsonl").is_file():
            cmd = ["data", "splits", "all", "--multi", "first", "--out", args.splits]
            subprocess.run([sys.executable, "-m", "kpod", *cmd], check=True, cwd=ROOT)
        variants = args.variants or [v for v in VARIANTS if v not in EXTRA]
        # KPOD first: the schedule-only variants compare their schedule with its.
        order = ["kpod"] + [v for v in variants if v != "kpod"]
        needs_kpod = any(v in SCHEDULE_ONLY for v in variants)
        for seed in args.seeds or [0, 1]:
            for name in order:
                if name in variants or (name == "kpod" and needs_kpod):
                    run_variant(name, seed, args)
                    archive(base, setting)
                    (base / "results.md").write_text(report(setting), encoding="utf-8")
    for path in archive(base, setting):
        print(f"archived {path.relative_to(ROOT)}")
    text = report(setting)
    base.mkdir(parents=True, exist_ok=True)
    (base / "results.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def _archived(variant: str, seed: int, gsm8k: bool) -> bool:
    """Whether the fair test's record of this run is archived (with GSM8K if asked)."""
    path = archive_dir(FAIR) / f"{variant}-s{seed}.json"
    if not path.is_file():
        return False
    rec = json.loads(path.read_text(encoding="utf-8"))
    return not gsm8k or "gsm8k" in rec.get("correct", {})


def print_plan(args: argparse.Namespace) -> int:
    """The fair test's runs in order, with their state and the command that runs them."""
    plan = fair_plan(args.variants, args.seeds, args.main_seeds)
    print(f"fair test: {len(plan)} runs, in this order (runs/repro/fair/<run>):")
    for k, (v, s) in enumerate(plan, start=1):
        run_dir = repro_dir(FAIR) / f"{v}-s{s}"
        if _archived(v, s, args.gsm8k):
            state = "archived"
        elif (run_dir / "train").is_dir():
            state = "training started (resumes from its last epoch checkpoint)"
        elif run_dir.is_dir():
            state = "started (steps before training)"
        else:
            state = "pending"
        print(f"  {k:2d}. {v}-s{s}: {state}")
    gsm = " --gsm8k" if args.gsm8k else ""
    if args.main_seeds > FAIR_SEEDS["kpod"]:
        gsm += f" --main-seeds {args.main_seeds}"
    print(
        "run them (interrupt and rerun at will; each run is archived when its evaluation "
        f"finishes):\n  python scripts/reproduce_svamp.py --setting fair{gsm} [--max-runs N]"
    )
    return 0


def run_fair(args: argparse.Namespace) -> None:
    """The fair test's plan in order: each run not archived yet is run (or resumed),
    evaluated and archived before the next starts; ``--max-runs`` stops early."""
    fair_train_file(args)
    check_fair_setting(args)
    base = repro_dir(FAIR)
    started = 0
    for variant, seed in fair_plan(args.variants, args.seeds, args.main_seeds):
        if _archived(variant, seed, args.gsm8k):
            continue
        if args.max_runs is not None and started >= args.max_runs:
            print(f"fair: stopped after {started} runs (--max-runs)")
            break
        if variant in SCHEDULE_ONLY and not _archived("kpod", seed, False):
            run_variant("kpod", seed, args)  # the schedule check needs its KPOD run
        run_variant(variant, seed, args)
        started += 1
        for path in archive(base, FAIR):
            print(f"archived {path.relative_to(ROOT)}")
        base.mkdir(parents=True, exist_ok=True)
        (base / "results.md").write_text(fair_report(), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
