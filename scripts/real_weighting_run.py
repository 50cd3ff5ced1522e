"""Real weighting-module runs with SmolLM2-135M (docs/weighting.md; not part of CI).

Trains the keypoint weighting module through ``kpod.weighting.train_weighting``
on real rationales, one predictor option per run, and records what
docs/weighting.md reports: the gates (informativeness gap, mean weight, keep
ratio, token-class ranks against three untrained generators), the wall time
of every phase, the peak RSS, the CPU and its bf16 flag.

Options (``--variant``), all with target_keep 0.5 unless ``--target-keep none``:

- ``cot``    (a) predictor adapted by CoT fine-tuning + random masks, then frozen
- ``cot-joint`` (a') adapted, then trained jointly at learning_rate * 0.1
- ``lora``   (b) the pretrained predictor trained jointly through LoRA (r = 16)
- ``none``   the pretrained predictor, frozen (what kpod did before)

    python scripts/real_weighting_run.py --data svamp --variant cot --out runs/weighting/svamp-cot
    python scripts/real_weighting_run.py --data gsm8k --variant cot --out runs/weighting/gsm8k-cot

SVAMP: the paper's 700-question train split with MCC-KD rationales
(``kpod data splits``), teacher-filtered, one rationale per question (the first
that agrees with the gold answer). GSM8K: the human solutions of the paper's
train split. Rerunning the same command reuses the adapted predictor.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

VARIANTS: dict[str, dict[str, Any]] = {
    "cot": {"predictor_adapt": "cot", "freeze_predictor": True},
    "cot-joint": {"predictor_adapt": "cot", "freeze_predictor": False},
    "lora": {"predictor_adapt": "none", "freeze_predictor": False, "predictor_lora_r": 16},
    "none": {"predictor_adapt": "none", "freeze_predictor": True},
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_facts() -> dict[str, str]:
    from kpod.precision import detect

    caps = detect()
    native = sorted(caps.cpu_flags & {"amx_bf16", "avx512_bf16", "bf16"})
    return {"cpu": caps.cpu_model or platform.processor(), "bf16_flags": ",".join(native) or "none"}


def load_rationales(name: str, n: int, splits: Path) -> Any:
    from datasets import Dataset

    from kpod.data import filter_by_answer, read_records

    if name == "svamp":
        path = splits / "svamp_train.jsonl"
        if not path.is_file():
            raise SystemExit(
                f"{path} is missing: run `kpod data splits all --data-root ../shared/data "
                f"--out {splits}` first"
            )
        rows = [dict(r) for r in read_records(str(path))]
        kept, _ = filter_by_answer(rows)
        first: dict[str, dict[str, Any]] = {}
        for r in kept:  # one rationale per question: the first that agrees
            first.setdefault(r["question"], r)
        rows = list(first.values())
    elif name == "gsm8k":
        path = splits / "gsm8k_train.jsonl"
        rows = [dict(r) for r in read_records(str(path))]
    else:
        raise SystemExit(f"unknown data {name!r}; use svamp or gsm8k")
    rows = rows[:n]
    keep = ("id", "question", "rationale", "answer")
    return Dataset.from_list([{k: r[k] for k in keep} for r in rows])


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="svamp", choices=["svamp", "gsm8k"])
    ap.add_argument("--splits", default=str(ROOT / "runs" / "splits"))
    ap.add_argument("--variant", default="cot", choices=sorted(VARIANTS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-train", type=int, default=700, help="rationales (10%% held out)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=float, default=3.0, help="ceiling of mask learning")
    ap.add_argument("--adapt-epochs", type=float, default=1.0)
    ap.add_argument("--adapt-mask-epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-3, help="weight generator learning rate")
    ap.add_argument("--target-keep", default="0.5")
    ap.add_argument("--init-keep", type=float, default=0.9, help="initial weight")
    ap.add_argument("--dual-lr", type=float, default=0.1)
    ap.add_argument("--max-prefixes", type=int, default=None, help="default: every prefix")
    ap.add_argument("--bf16", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from kpod.data import prepare_examples
    from kpod.models import load_tokenizer
    from kpod.weighting.analysis import markdown_table
    from kpod.weighting.score import score_dataset
    from kpod.weighting.train import WeightingConfig, train_weighting
    from kpod.weighting.view import render_html

    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer("smollm2-135m")
    cache = out / "prepared"
    if cache.is_dir():
        from datasets import load_from_disk

        prepared = load_from_disk(str(cache))
    else:
        prepared = prepare_examples(
            load_rationales(args.data, args.n_train, Path(args.splits)), tok
        )
        prepared.save_to_disk(str(cache))
    target = None if args.target_keep.lower() == "none" else float(args.target_keep)
    cfg = WeightingConfig(
        output_dir=str(out / "module"),
        student="smollm2-135m",
        max_prefixes=args.max_prefixes,
        max_length=args.max_length,
        init_keep=args.init_keep,
        dual_lr=args.dual_lr,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        num_train_epochs=args.epochs,
        adapt_epochs=args.adapt_epochs,
        adapt_mask_epochs=args.adapt_mask_epochs,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        target_keep=target,
        logging_steps=10,
        save_strategy="steps",
        save_steps=40,
        save_total_limit=1,
        bf16=args.bf16,
        use_cpu=True,
        seed=0,
        **VARIANTS[args.variant],
    )
    t1 = time.time()
    module = train_weighting(prepared, cfg, tok)
    train_s = time.time() - t1
    metrics = json.loads((out / "module" / "metrics.json").read_text())
    (out / "classes.md").write_text(markdown_table(metrics["classes"]) + "\n", encoding="utf-8")
    heldout = prepared.shuffle(seed=0).select(range(min(8, len(prepared))))
    scored = score_dataset(heldout, module, tokenizer=tok, progress=False)
    (out / "weights.html").write_text(render_html(scored, tok), encoding="utf-8")
    adapt = out / "module" / "adapt" / "adapt_done.json"
    res = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        **cpu_facts(),
        "torch_threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
        "n_rationales": len(prepared),
        "weighting_s": round(train_s),
        "adapt": json.loads(adapt.read_text()) if adapt.is_file() else None,
        "total_wall_s": round(time.time() - t0),
        "peak_rss_mib": round(peak_rss_mib()),
        "gates": metrics["gates"],
        "warnings": metrics["warnings"],
        "best_step": metrics["early_stopping"]["best_step"],
        "final_alpha": metrics["early_stopping"]["final_alpha"],
    }
    (out / "resources.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(metrics["classes"]))
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
