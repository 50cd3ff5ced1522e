"""Reproduction on SVAMP with SmolLM2-135M: zero-shot, plain CoT distillation, KPOD and
the four ablations of the paper's Table 2, several seeds; SVAMP test in distribution and
ASDiv test out of distribution. Not part of CI (hours on a CPU).

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


def switches(name: str) -> list[tuple[str, str, object]]:
    """(config section, field, value) of every switch variant ``name`` sets."""
    out = []
    for key, value in VARIANTS[name].items():
        section, field = key.split(".", 1)
        out.append((section, field, value))
    return out


def repro_dir(delta_steps: int) -> Path:
    """runs/repro for the default delta_steps = 1, runs/repro/delta<N> otherwise."""
    return REPRO if delta_steps == 1 else REPRO / f"delta{delta_steps}"


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


def run_variant(name: str, seed: int, args: argparse.Namespace) -> Path:
    base = repro_dir(args.delta_steps)
    run_dir = base / f"{name}-s{seed}"
    cfg = base_config(args)
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
    # their fingerprints match, and recomputes them otherwise.
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


def archive_dir(delta_steps: int) -> Path:
    return ARCHIVE / f"delta{delta_steps}"


def archive(base: Path, delta_steps: int) -> list[Path]:
    """Writes the archive record of every finished evaluation under ``base``."""
    written = []
    for label, seed, run_dir, step, same_as in _finished(base):
        rec: dict = {"variant": label, "seed": seed, "delta_steps": delta_steps}
        # kpod compare pairs a pretrained-student evaluation with any baseline seed.
        rec["evaluated"] = "before" if step == "eval_before" else "after"
        rec["run_dir"] = str(run_dir.relative_to(ROOT))
        if same_as is not None:
            rec["same_schedule_as"] = same_as
        for ds in SETS:
            path = run_dir / step / f"predictions-{ds}.jsonl"
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
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        cfg.pop("run_dir", None)
        rec["config"] = cfg
        out = archive_dir(delta_steps) / f"{label}-s{seed}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(rec, indent=1, sort_keys=True) + "\n"
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            out.write_text(text, encoding="utf-8")
            written.append(out)
    return written


def _records(delta_steps: int) -> list[dict]:
    """Archived records of a setting, plus the default setting's runs without progression."""
    recs = [json.loads(p.read_text()) for p in sorted(archive_dir(delta_steps).glob("*.json"))]
    if delta_steps != 1:
        recs += [
            json.loads(p.read_text())
            for p in sorted(archive_dir(1).glob("*.json"))
            if p.stem.rsplit("-s", 1)[0] in NO_PROGRESSION
        ]
    return sorted(recs, key=lambda r: (ORDER.index(r["variant"]), r["seed"]))


# Display names of the tables in docs/REPRODUCTION.md.
SET_NAMES = {"svamp": "SVAMP", "asdiv": "ASDiv (OOD)"}


def comparison(delta_steps: int):  # -> kpod.compare.Comparison
    """The archived runs of a setting compared by ``kpod compare``'s library, against KPOD.

    ``kpod compare docs/reproduction/delta<N> --baseline kpod`` computes the same
    (plus, for N != 1, the borrowed CoT / w.o.-prog records of delta1).
    """
    from kpod.compare import compare, from_record

    recs = _records(delta_steps)
    runs = [from_record(rec, f"{rec['variant']}-s{rec['seed']}") for rec in recs]
    # Without KPOD in the archive (yet) the tables have accuracies and no differences.
    kpod = "kpod" if any(r.label == "kpod" for r in runs) else None
    return compare(runs, baseline=kpod, sets=SETS) if runs else None


def stage_table(delta_steps: int) -> str:
    """Questions advanced / eligible at each curriculum stage 1..T of every archived run
    whose stages record eligibility ("" when none does: runs without progression)."""
    from kpod.compare import stage_markdown

    cmp = comparison(delta_steps)
    if cmp is None:
        return ""
    return stage_markdown(cmp, label_column="variant", source="from the archive")


def report(delta_steps: int) -> str:
    """What ``--table-only`` prints and ``results.md`` holds: stages, then accuracies."""
    stages = stage_table(delta_steps)
    return (stages + "\n" if stages else "") + table(delta_steps)


def table(delta_steps: int = 1) -> str:
    """Per-run rows, then each variant pooled over its seeds, both against KPOD."""
    from kpod.compare import accuracy_markdown

    cmp = comparison(delta_steps)
    if cmp is None:
        return "No archived run of this setting.\n"
    return accuracy_markdown(
        cmp,
        set_names=SET_NAMES,
        short_set_names={"asdiv": "ASDiv"},
        baseline_name="KPOD",
        label_column="variant",
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--variants",
        nargs="+",
        default=[v for v in VARIANTS if v not in EXTRA],
        choices=list(VARIANTS),
        help="default: the paper's variants (kpod-mean only when named)",
    )
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--epochs", type=int, default=6, help="training epochs")
    ap.add_argument("--stages", type=int, default=None, help="T (default: half the epochs)")
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="drop training examples longer than this (question + rationale + answer tokens)",
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
        "--splits", default=str(ROOT / "runs" / "splits"), help="kpod data splits output"
    )
    ap.add_argument(
        "--delta-steps",
        type=int,
        default=1,
        help="steps a selected question moves per stage; runs of delta_steps N != 1 go to "
        "runs/repro/deltaN/",
    )
    ap.add_argument(
        "--retrain-equivalent",
        action="store_true",
        help="train w.o.-sig-dif / w.o.-div even when their schedule equals KPOD's",
    )
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    base = repro_dir(args.delta_steps)
    if not args.table_only:
        if not (Path(args.splits) / "svamp_train.jsonl").is_file():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "kpod",
                    "data",
                    "splits",
                    "all",
                    "--multi",
                    "first",
                    "--out",
                    args.splits,
                ],
                check=True,
                cwd=ROOT,
            )
        # KPOD first: the schedule-only variants compare their schedule with its.
        order = ["kpod"] + [v for v in args.variants if v != "kpod"]
        needs_kpod = any(v in SCHEDULE_ONLY for v in args.variants)
        for seed in args.seeds:
            for name in order:
                if name in args.variants or (name == "kpod" and needs_kpod):
                    run_variant(name, seed, args)
                    archive(base, args.delta_steps)
                    (base / "results.md").write_text(report(args.delta_steps), encoding="utf-8")
    for path in archive(base, args.delta_steps):
        print(f"archived {path.relative_to(ROOT)}")
    text = report(args.delta_steps)
    base.mkdir(parents=True, exist_ok=True)
    (base / "results.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
