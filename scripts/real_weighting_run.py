"""Real weighting-module run (issue 4 item 5; not part of CI).

Trains the keypoint weighting module on GSM8K human rationales with the
offline SmolLM2-135M student (kpod.models alias "smollm2-135m") as embedding
source and answer predictor (its first L layers), scores held-out rationales,
and writes the token-class table of docs/weighting.md.

    # measure a few steps first
    .venv/bin/python scripts/real_weighting_run.py --measure 3
    # the run (background, resumable: rerun the same command to continue)
    nohup .venv/bin/python scripts/real_weighting_run.py --out runs/weighting-gsm8k \
        > runs/weighting-gsm8k.log 2>&1 &
    # only the analysis of a finished (or checkpointed) run
    .venv/bin/python scripts/real_weighting_run.py --out runs/weighting-gsm8k --analyse-only

Everything is written under --out: the prepared data, Trainer checkpoints,
the module, scored examples, weights.html/png, classes.json/md and
resources.json (wall time and peak RSS).
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


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(args: argparse.Namespace, tokenizer: Any) -> tuple[Any, Any]:
    from datasets import load_from_disk

    from kpod.data import load_records, prepare_examples

    cache = Path(args.out) / "prepared"
    if (cache / "train").is_dir():
        return load_from_disk(str(cache / "train")), load_from_disk(str(cache / "heldout"))
    records = load_records(args.data)
    n = args.n_train + args.n_heldout
    records = records.select(range(min(n, len(records))))
    prepared = prepare_examples(records, tokenizer)
    train = prepared.select(range(min(args.n_train, len(prepared))))
    heldout = prepared.select(range(len(train), len(prepared)))
    train.save_to_disk(str(cache / "train"))
    heldout.save_to_disk(str(cache / "heldout"))
    return train, heldout


def probe(args: argparse.Namespace, train: object, tok: object) -> None:
    """Is the answer predictor usable? L_p with all rationale tokens kept vs all masked."""
    import torch

    from kpod.models import load_model
    from kpod.weighting.train import WeightingCollator, WeightingConfig, build_module

    batch = WeightingCollator(pad_token_id=tok.pad_token_id)(  # type: ignore[attr-defined]
        [train[i] for i in range(16)]  # type: ignore[index]
    )
    for layers in [int(x) for x in args.probe.split(",")]:
        cfg = WeightingConfig(
            output_dir=str(Path(args.out) / "probe"),
            predictor_layers=layers or None,
            max_prefixes=1,
        )
        module: Any = build_module(cfg, tok, student=load_model("smollm2-135m")).eval()
        for name, bias in (("all kept", 30.0), ("all masked", -30.0)):
            module.generator.mlp[-1].bias.data.fill_(bias)
            with torch.no_grad():
                lp = float(module(**batch)["prefix_loss"])
            print(
                f"PROBE predictor_layers={layers or 'all'} {name}: L_p = {lp:.3f} nats/answer token",
                flush=True,
            )


def init_control(args: argparse.Namespace, heldout: object, tok: object) -> None:
    """What an UNTRAINED generator's weights look like per class (the control)."""
    import torch

    from kpod.models import load_model
    from kpod.weighting.analysis import class_table
    from kpod.weighting.score import score_dataset
    from kpod.weighting.train import WeightingConfig, build_module

    student = load_model("smollm2-135m")
    rows = {}
    for seed in range(args.init_control):
        torch.manual_seed(seed)
        cfg = WeightingConfig(output_dir=str(Path(args.out) / "control"), init_keep=args.init_keep)
        module = build_module(cfg, tok, student=student).eval()
        scored = score_dataset(heldout, module, progress=False)
        rows[seed] = class_table(scored, tok)["classes"]
    classes = list(rows[0])
    lines = [
        "| class | " + " | ".join(f"rank, init seed {s}" for s in rows) + " |",
        "| --- |" + " ---: |" * len(rows),
    ]
    for c in classes:
        lines.append(
            f"| {c} | " + " | ".join(f"{rows[s][c]['mean_rank']:.3f}" for s in rows) + " |"
        )
    text = "\n".join(lines)
    (Path(args.out) / "classes_init_control.md").write_text(text + "\n", encoding="utf-8")
    print(text)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default="/work/shared/data/gsm8k/train.jsonl")
    ap.add_argument("--out", default=str(ROOT / "runs" / "weighting-gsm8k"))
    ap.add_argument("--n-train", type=int, default=650)
    ap.add_argument("--n-heldout", type=int, default=100)
    ap.add_argument(
        "--predictor-layers", type=int, default=None, help="first L layers (default all)"
    )
    ap.add_argument("--max-prefixes", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--warmup-steps", type=int, default=0, help="predictor warm-up steps")
    ap.add_argument("--bf16", default="auto", help="auto (native bf16 only), true or false")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--init-keep", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--measure", type=int, default=0, help="only time this many steps and exit")
    ap.add_argument("--analyse-only", action="store_true")
    ap.add_argument(
        "--init-control",
        type=int,
        default=0,
        help="class table of N untrained generators (seeds 0..N-1) on the held-out set, then exit",
    )
    ap.add_argument(
        "--probe",
        default=None,
        help="comma-separated predictor layer counts (0 = all): print L_p on 16 training "
        "examples with every rationale token kept vs every one masked, then exit",
    )
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from kpod.models import load_tokenizer
    from kpod.weighting.analysis import class_table, markdown_table
    from kpod.weighting.module import KeypointWeighting
    from kpod.weighting.score import score_dataset
    from kpod.weighting.train import WeightingConfig, train_weighting
    from kpod.weighting.view import render_html, render_png

    t0 = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer("smollm2-135m")
    train, heldout = prepare(args, tok)
    print(
        f"prepared {len(train)} train / {len(heldout)} held-out examples "
        f"in {time.time() - t0:.0f} s",
        flush=True,
    )

    cfg = WeightingConfig(
        output_dir=str(out),
        student="smollm2-135m",
        predictor_layers=args.predictor_layers,
        max_prefixes=args.max_prefixes,
        max_length=args.max_length,
        alpha=args.alpha,
        init_keep=args.init_keep,
        predictor_warmup_steps=args.warmup_steps,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        logging_steps=5,
        save_steps=10,
        save_total_limit=2,
        bf16=args.bf16,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        max_steps=args.measure if args.measure else -1,
        save_strategy="no" if args.measure else "steps",
        resume=not args.measure,
    )
    if args.probe:
        probe(args, train, tok)
        return 0
    if args.init_control:
        init_control(args, heldout, tok)
        return 0
    if not args.analyse_only:
        t1 = time.time()
        if args.measure:
            cfg.output_dir = str(out / "measure")
        train_weighting(train, cfg, tok)
        dt = time.time() - t1
        if args.measure:
            print(
                f"MEASURE {args.measure} steps: {dt:.1f} s ({dt / args.measure:.1f} s/step incl. "
                f"start-up), peak RSS {peak_rss_mib():.0f} MiB",
                flush=True,
            )
            return 0
        print(f"trained in {dt:.0f} s", flush=True)

    module_dir = out
    if not (out / "weighting.safetensors").is_file():  # unfinished run: latest checkpoint
        cks = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        if not cks:
            raise SystemExit(f"no module or checkpoint under {out}")
        module_dir = cks[-1]
    print(f"analysing {module_dir}", flush=True)
    module = KeypointWeighting.load(module_dir)
    scored = score_dataset(heldout, module, tokenizer=tok)
    scored.save_to_disk(str(out / "scored_heldout"))
    table = class_table(scored, tok)
    (out / "classes.json").write_text(json.dumps(table, indent=2), encoding="utf-8")
    (out / "classes.md").write_text(markdown_table(table) + "\n", encoding="utf-8")
    (out / "weights.html").write_text(render_html(scored.select(range(8)), tok), encoding="utf-8")
    render_png(scored.select(range(4)), tok, out / "weights.png")
    state = out / "trainer_state.json"
    log = []
    for ck in sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        if (ck / "trainer_state.json").is_file():
            log = json.loads((ck / "trainer_state.json").read_text())["log_history"]
    if state.is_file():
        log = json.loads(state.read_text()).get("log_history", log)
    res = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "machine": f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} torch threads",
        "args": vars(args),
        "module": str(module_dir),
        "total_wall_s_this_invocation": round(time.time() - t0),
        "peak_rss_mib_this_invocation": round(peak_rss_mib()),
        "last_logs": log[-3:],
    }
    (out / "resources.json").write_text(json.dumps(res, indent=2), encoding="utf-8")
    print(markdown_table(table))
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
