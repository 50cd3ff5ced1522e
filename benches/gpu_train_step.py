"""Tokens per second and MFU of the KPOD training step on one GPU (bf16), one prepared script.

Two randomly initialised Llama configurations:

* ``smollm2-135m``: SmolLM2-135M's shape (hidden 576, 30 layers, 9 heads / 3 KV
  heads, MLP 1536, vocab 49152, tied embeddings), about 135M parameters;
* ``llama-1b``: Llama-3.2-1B's shape (hidden 2048, 16 layers, 32 / 8 heads, MLP
  8192, vocab 128256, tied embeddings), about 1.24B parameters.

For each, a KPOD step (``KpodTrainer.training_step`` + AdamW step on a
mid-curriculum batch with token weights) and a plain ``Trainer`` SFT step on
the same tokens are timed, interleaved, after warm-up. MFU counts
``6 N + 12 L d s`` FLOPs per trained token (parameters N, layers L, width d,
sequence s; the attention term of the PaLM appendix) against the GPU's dense
bf16 peak (``--peak-tflops`` overrides the built-in table).

    python benches/gpu_train_step.py                 # on the GPU machine, ~3-5 min
    python benches/gpu_train_step.py --smoke         # tiny config on CPU, checks the script

Prints a markdown table; ``--output FILE`` also writes it (JSON next to it).
The native scheduler is not needed: the batch is cut at a fixed mid-curriculum
stage (every question writes its last two steps), so only the step is timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(
        hidden_size=576,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        intermediate_size=1536,
        vocab_size=49152,
        tie_word_embeddings=True,
        rope_theta=100000.0,
    ),
    "llama-1b": dict(
        hidden_size=2048,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=8192,
        vocab_size=128256,
        tie_word_embeddings=True,
        rope_theta=500000.0,
    ),
    "smoke": dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=1024,
        tie_word_embeddings=True,
    ),
}

# dense bf16 peak TFLOPS (no sparsity)
PEAK_TFLOPS = {
    "H100": 989.0,
    "H200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
    "L4": 121.0,
}


def peak_tflops(override: float | None) -> float | None:
    if override:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


def examples(n: int, vocab: int, seq: int, n_steps: int = 5) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    prompt = seq // 6
    answer = 12
    step_len = (seq - prompt - answer) // n_steps
    rows = []
    for i in range(n):
        step_ids = [-1] * prompt + [k for k in range(n_steps) for _ in range(step_len)]
        step_ids += [-2] * (seq - len(step_ids))
        ids = rng.integers(5, vocab, size=seq).tolist()
        ids[-1] = 1
        rows.append(
            {
                "id": str(i),
                "input_ids": ids,
                "step_ids": step_ids,
                "n_steps": n_steps,
                "token_weights": [
                    1.0 if s < 0 else float(rng.uniform(0.05, 0.95)) for s in step_ids
                ],
            }
        )
    return rows


def build_model(shape: str, pure_bf16: bool, layers: int | None = None) -> Any:
    """A randomly initialised Llama of ``SHAPES[shape]`` (``layers`` overrides the depth)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    dims = dict(SHAPES[shape])
    if layers is not None:
        dims["num_hidden_layers"] = layers
    cfg = LlamaConfig(
        max_position_embeddings=4096,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        **dims,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    if pure_bf16:
        model = model.to(torch.bfloat16)  # type: ignore[arg-type]
    return model


def run_shape(shape: str, args: argparse.Namespace, out: str) -> dict[str, Any]:
    from transformers import Trainer, TrainingArguments

    from kpod.training import KpodConfig, KpodTrainer
    from kpod.training.collator import KpodCollator

    cuda = torch.cuda.is_available()
    bf16 = cuda and not args.pure_bf16
    common: dict[str, Any] = dict(
        per_device_train_batch_size=args.batch,
        learning_rate=1e-4,
        report_to="none",
        use_cpu=not cuda,
        save_strategy="no",
        disable_tqdm=True,
        bf16=bf16,
        max_steps=10,
    )
    if args.fused_adamw:
        common["optim"] = "adamw_torch_fused" if cuda else "adamw_torch"
    rows = examples(args.batch * 2, SHAPES[shape]["vocab_size"], args.seq)
    kpod_model = build_model(shape, args.pure_bf16)
    n_params = sum(p.numel() for p in kpod_model.parameters())
    kcfg = KpodConfig(
        output_dir=os.path.join(out, shape, "kpod"),
        no_progression=True,  # the batch cut below is fixed; no scheduler needed
        **common,
    )
    kpod_tr = KpodTrainer(kpod_model, kcfg, rows)
    n = kpod_tr.stage_dataset.n_steps
    kpod_tr.stage_dataset.set_given_steps(np.maximum(n - 2, 0))
    feats = [kpod_tr.stage_dataset[i] for i in range(args.batch)]
    kbatch = kpod_tr.data_collator(feats)
    collate = KpodCollator(pad_token_id=0)
    pbatch = collate([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in feats])
    plain_model = build_model(shape, args.pure_bf16)
    pcfg = TrainingArguments(
        output_dir=os.path.join(out, shape, "plain"), remove_unused_columns=False, **common
    )
    plain_tr = Trainer(model=plain_model, args=pcfg, train_dataset=rows, data_collator=collate)
    dev = kpod_tr.args.device
    num = torch.tensor(int(kbatch["labels"][:, 1:].ne(-100).sum()), device=dev)
    tokens = int(kbatch["attention_mask"].sum())
    target_tokens = int(num)

    def make_step(tr: Any, batch: dict[str, Any]) -> Any:
        tr.model.to(dev)
        tr.create_optimizer_and_scheduler(num_training_steps=1000)
        tr.current_gradient_accumulation_steps = 1
        b = {k: v.to(dev) for k, v in batch.items()}

        def step() -> float:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with tr.accelerator.autocast():
                tr.training_step(tr.model, dict(b), num)
            tr.optimizer.step()
            tr.model.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        return step

    steps = {"kpod": make_step(kpod_tr, kbatch), "plain": make_step(plain_tr, pbatch)}
    for _ in range(args.warmup):
        for f in steps.values():
            f()
    times: dict[str, list[float]] = {"kpod": [], "plain": []}
    for r in range(args.steps):
        order = ["kpod", "plain"] if r % 2 == 0 else ["plain", "kpod"]
        for name in order:
            times[name].append(steps[name]())
    cfg = SHAPES[shape]
    flops_per_token = 6 * n_params + 12 * cfg["num_hidden_layers"] * cfg["hidden_size"] * args.seq
    peak = peak_tflops(args.peak_tflops)
    res: dict[str, Any] = {
        "shape": shape,
        "params": n_params,
        "batch": args.batch,
        "seq": args.seq,
        "tokens": tokens,
    }
    for name, t in times.items():
        med = statistics.median(t)
        tps = tokens / med
        res[name] = {
            "ms_per_step": 1000 * med,
            "tokens_per_s": tps,
            "mfu": (tps * flops_per_token / (peak * 1e12)) if peak else None,
        }
    res["ratio"] = res["kpod"]["ms_per_step"] / res["plain"]["ms_per_step"]
    res["target_tokens"] = target_tokens
    res["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    del kpod_tr, plain_tr
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return res


def render(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    dev = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({os.cpu_count()} cores)"
    )
    prec = (
        "pure bf16 weights"
        if args.pure_bf16
        else ("bf16 autocast, fp32 master weights" if torch.cuda.is_available() else "fp32 (CPU)")
    )
    lines = [
        "## Training step on GPU",
        "",
        f"Device: {dev}; torch {torch.__version__}; {prec}. Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"Command: `python benches/gpu_train_step.py {' '.join(sys.argv[1:])}`. Median of {args.steps} interleaved steps "
        f"after {args.warmup} warm-up steps; a step is forward + backward + AdamW. MFU = (6N + 12 L d s) x tokens/s / peak "
        f"({peak_tflops(args.peak_tflops) or 'unknown'} TFLOPS).",
        "",
        "| shape | params | batch x seq | plain ms/step | KPOD ms/step | KPOD / plain | KPOD tokens/s | KPOD MFU | peak mem GiB |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        mfu = r["kpod"]["mfu"]
        mem = r["peak_mem_gib"]
        lines.append(
            f"| {r['shape']} | {r['params'] / 1e6:,.0f}M | {r['batch']} x {r['seq']} | {r['plain']['ms_per_step']:.1f} | "
            f"{r['kpod']['ms_per_step']:.1f} | {r['ratio']:.3f}x | {r['kpod']['tokens_per_s']:,.0f} | "
            f"{'-' if mfu is None else f'{100 * mfu:.1f}%'} | {'-' if mem is None else f'{mem:.1f}'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--shapes", default="smollm2-135m,llama-1b", help="comma-separated: " + ", ".join(SHAPES)
    )
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--pure-bf16", action="store_true", help="bf16 weights instead of autocast")
    ap.add_argument("--fused-adamw", action="store_true", help="torch fused AdamW on CUDA")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny config, 2 steps (runs on CPU)")
    ap.add_argument(
        "--output", default=None, help="also write the table here (and results JSON beside it)"
    )
    args = ap.parse_args(argv)
    if args.smoke:
        args.shapes, args.batch, args.seq, args.steps, args.warmup = "smoke", 2, 64, 2, 1
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        ap.error(f"unknown shape(s) {unknown}; choose from {', '.join(SHAPES)}")
    results = []
    with tempfile.TemporaryDirectory() as out:
        for shape in shapes:
            print(f"timing {shape} ...", flush=True)
            results.append(run_shape(shape, args, out))
    text = render(results, args)
    print(text)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.with_suffix(".json").write_text(
            json.dumps({"platform": platform.platform(), "results": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
