"""Full fine-tuning vs LoRA for a SmolLM2-135M-shaped student: time per KPOD optimizer step.

Issue 6 asks for LoRA in the reproduction "if it saves time without losing accuracy".
This measures the time side on the reproduction's shape: a randomly initialised Llama
with SmolLM2-135M's configuration (576 hidden, 30 layers, 9 heads / 3 KV heads, MLP
1536, 49152-token vocabulary, tied embeddings), batch 8 of ~256-token stage-1 KPOD
examples, bf16 autocast, ``KpodTrainer.train()`` for a few optimizer steps (data,
forward, backward, optimizer, stage callback). Variants run interleaved, so machine
noise hits them alike; beside wall-clock time the table gives this process's CPU
time. Results go to the "LoRA vs full fine-tuning" section of ``benches/RESULTS.md``.

    .venv/bin/python benches/bench_lora.py             # ~3 min on 2 cores
    .venv/bin/python benches/bench_lora.py --quick     # smoke run, prints only
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "benches"))

import torch  # noqa: E402

from bench_train_step import machine, make_examples, trainer_args, write_section  # noqa: E402
from gpu_train_step import SHAPES, build_model  # noqa: E402

SECTION = "## LoRA vs full fine-tuning"
SHAPE = "smollm2-135m"


def make_trainer(args: argparse.Namespace, lora_r: int, out: str) -> Any:
    from kpod.training import KpodConfig, KpodTrainer

    rows = make_examples(args.examples, SHAPES[SHAPE]["vocab_size"], 0, (48, 4, 48, 12))
    lora = (
        dict(use_lora=True, lora_r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05)
        if lora_r
        else {}
    )
    cfg = KpodConfig(
        output_dir=os.path.join(out, f"r{lora_r}"),
        **trainer_args(args.batch, args.steps, bf16=True),
        **lora,  # type: ignore[arg-type]
    )
    return KpodTrainer(build_model(SHAPE, pure_bf16=False, layers=args.layers), cfg, rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--ranks", default="0,16,64", help="LoRA ranks; 0 = full fine-tuning")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--examples", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per train() call")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=None, help="override the 30 layers")
    ap.add_argument("--quick", action="store_true", help="2 layers, 1 rep, print only")
    ap.add_argument("--output", default=str(ROOT / "benches" / "RESULTS.md"))
    args = ap.parse_args(argv)
    if args.quick:
        args.layers, args.reps, args.steps, args.examples = 2, 1, 1, 8
    torch.set_num_threads(args.threads)
    ranks = [int(r) for r in args.ranks.split(",")]
    times: dict[int, list[tuple[float, float]]] = {r: [] for r in ranks}
    with tempfile.TemporaryDirectory() as out:
        trainers = {r: make_trainer(args, r, out) for r in ranks}
        params = {
            r: (
                sum(p.numel() for p in tr.model.parameters() if p.requires_grad),
                sum(p.numel() for p in tr.model.parameters()),
            )
            for r, tr in trainers.items()
        }
        for tr in trainers.values():  # warm-up (allocator, kernels)
            tr.train()
        for rep in range(args.reps):
            order = ranks if rep % 2 == 0 else ranks[::-1]
            for r in order:
                t0, c0 = time.perf_counter(), time.process_time()
                trainers[r].train()
                steps = trainers[r].state.global_step
                times[r].append(
                    ((time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps)
                )
    full = ranks[0]
    lines = [
        SECTION,
        "",
        "Time per KPOD optimizer step (`KpodTrainer.train()`, data + forward + backward + "
        "optimizer + stage callback), SmolLM2-135M's shape with random weights, batch "
        f"{args.batch} x ~256 tokens, bf16 autocast, {args.threads} torch threads, "
        f"{args.steps} steps per call, medians of {args.reps} calls run interleaved. "
        f"Load average at the end: {os.getloadavg()[0]:.1f}.",
        "",
        f"Machine: {machine()}. Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Command: `python benches/bench_lora.py {' '.join(argv or sys.argv[1:])}`.",
        "",
        "| variant | trainable parameters | wall s / step | CPU s / step | wall vs full |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    base = statistics.median(w for w, _ in times[full])
    for r in ranks:
        wall = statistics.median(w for w, _ in times[r])
        cpu = statistics.median(c for _, c in times[r])
        name = "full fine-tuning" if r == 0 else f"LoRA r = {r} (all linear layers)"
        trainable, total = params[r]
        lines.append(
            f"| {name} | {trainable / 1e6:.1f}M of {total / 1e6:.1f}M | {wall:.2f} | {cpu:.2f} "
            f"| {wall / base:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        write_section(Path(args.output), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
