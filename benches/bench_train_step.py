"""KPOD training step vs a plain ``transformers.Trainer`` SFT step, same model and batch.

Both trainers get the same randomly initialised Llama (SmolLM2's 49152-token
vocabulary, so the loss over the logits costs what it costs in practice), the
same padded batch and the same weights. Two measurements, interleaved so that
machine noise hits both alike:

* ``training_step``: forward + backward of one batch (``Trainer.training_step``).
* ``train loop``: ``Trainer.train()`` for a fixed number of optimizer steps,
  including data loading, collation, the optimizer and KPOD's stage callback.

The target (issue 5) is KPOD <= 1.05x plain SFT. Results go to the "Training
step" section of ``benches/RESULTS.md`` (other sections are left alone).

    .venv/bin/python benches/bench_train_step.py            # default, ~2 min on 2 cores
    .venv/bin/python benches/bench_train_step.py --quick    # smoke run, no RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
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

SECTION = "## Training step"


def make_examples(
    n: int, vocab: int, seed: int, lengths: tuple[int, int, int, int]
) -> list[dict[str, Any]]:
    """Prepared-example-shaped rows: prompt, n_steps steps, answer part (random tokens)."""
    prompt_len, n_steps, step_len, answer_len = lengths
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        sl = [
            int(step_len + rng.integers(-step_len // 4, step_len // 4 + 1)) for _ in range(n_steps)
        ]
        step_ids = (
            [-1] * prompt_len + [k for k, m in enumerate(sl) for _ in range(m)] + [-2] * answer_len
        )
        ids = rng.integers(5, vocab, size=len(step_ids)).tolist()
        ids[-1] = 1  # EOS
        w = [1.0 if s < 0 else float(rng.uniform(0.05, 0.95)) for s in step_ids]
        rows.append(
            {
                "id": str(i),
                "input_ids": ids,
                "step_ids": step_ids,
                "n_steps": n_steps,
                "token_weights": w,
                "step_difficulty": rng.uniform(0.5, 3.0, size=n_steps).tolist(),
                "cluster": i % 5,
            }
        )
    return rows


def make_model(hidden: int, layers: int, vocab: int, seed: int) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3,
        num_hidden_layers=layers,
        num_attention_heads=max(hidden // 64, 1),
        num_key_value_heads=max(hidden // 192, 1),
        max_position_embeddings=2048,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg)


def trainer_args(batch: int, max_steps: int, bf16: bool) -> dict[str, Any]:
    """The TrainingArguments every benchmark trainer here shares (CPU unless CUDA, no saving)."""
    return dict(
        per_device_train_batch_size=batch,
        learning_rate=1e-4,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        save_strategy="no",
        disable_tqdm=True,
        logging_steps=10_000,
        max_steps=max_steps,
        num_train_epochs=2,
        bf16=bf16,
        seed=0,
    )


def build(
    args: argparse.Namespace, out: str
) -> tuple[Any, Any, dict[str, Any], dict[str, Any], int]:
    from transformers import Trainer, TrainingArguments

    from kpod.training import KpodConfig, KpodTrainer
    from kpod.training.collator import KpodCollator

    rows = make_examples(
        args.examples, args.vocab, 0, (args.prompt_len, args.n_steps, args.step_len, 12)
    )
    common = trainer_args(args.batch, args.loop_steps, args.bf16)
    # One model object for both trainers (each has its own optimizer): identical
    # weights, memory layout and kernels, so only the training code differs.
    kpod_model = make_model(args.hidden, args.layers, args.vocab, 0)
    plain_model = kpod_model
    kcfg = KpodConfig(output_dir=os.path.join(out, "kpod"), **common)
    kpod_tr = KpodTrainer(kpod_model, kcfg, rows)
    # Stage 1 of the curriculum: the batch the KPOD step sees is a real stage batch.
    kpod_tr.enter_stage(1)
    kbatch_rows = [kpod_tr.stage_dataset[i] for i in range(args.batch)]
    kbatch = kpod_tr.data_collator(kbatch_rows)
    # The plain SFT baseline trains on the same tokens with the same labels, no weights.
    plain_rows = [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in kbatch_rows]
    collate = KpodCollator(pad_token_id=0)
    pbatch = collate(plain_rows)
    all_plain = []
    for i in range(len(rows)):
        r = kpod_tr.stage_dataset[i]
        all_plain.append({"input_ids": r["input_ids"], "labels": r["labels"]})
    pcfg = TrainingArguments(
        output_dir=os.path.join(out, "plain"),
        remove_unused_columns=False,
        **common,
    )
    plain_tr = Trainer(model=plain_model, args=pcfg, train_dataset=all_plain, data_collator=collate)
    n_items = int(kbatch["labels"][:, 1:].ne(-100).sum())
    return kpod_tr, plain_tr, kbatch, pbatch, n_items


def time_steps(
    kpod_tr: Any,
    plain_tr: Any,
    kbatch: dict[str, Any],
    pbatch: dict[str, Any],
    n_items: int,
    reps: int,
) -> dict[str, list[float]]:
    dev = kpod_tr.args.device
    kb = {k: v.to(dev) for k, v in kbatch.items()}
    pb = {k: v.to(dev) for k, v in pbatch.items()}
    for tr in (kpod_tr, plain_tr):
        tr.create_optimizer_and_scheduler(num_training_steps=10)
        tr.current_gradient_accumulation_steps = 1
        tr.model.to(dev)
    times: dict[str, list[float]] = {"kpod": [], "plain": [], "kpod_cpu": [], "plain_cpu": []}
    num = torch.tensor(n_items, device=dev)

    def one(tr: Any, batch: dict[str, Any]) -> tuple[float, float]:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        with tr.accelerator.autocast():
            tr.training_step(tr.model, dict(batch), num)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        tr.model.zero_grad(set_to_none=True)
        return wall, cpu

    one(kpod_tr, kb), one(plain_tr, pb)  # warm-up
    for r in range(reps):
        pairs = [("kpod", kpod_tr, kb), ("plain", plain_tr, pb)]
        if r % 2:
            pairs.reverse()
        for name, tr, b in pairs:
            wall, cpu = one(tr, b)
            times[name].append(wall)
            times[name + "_cpu"].append(cpu)
    return times


def time_loops(kpod_tr: Any, plain_tr: Any, reps: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"kpod": [], "plain": [], "kpod_cpu": [], "plain_cpu": []}
    for r in range(reps):
        pairs = [("kpod", kpod_tr), ("plain", plain_tr)]
        if r % 2:
            pairs.reverse()
        for name, tr in pairs:
            t0, c0 = time.perf_counter(), time.process_time()
            tr.train()
            steps = tr.state.global_step
            times[name].append((time.perf_counter() - t0) / steps)
            times[name + "_cpu"].append((time.process_time() - c0) / steps)
    return times


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    )
    return f"{cpu}; {dev}; torch {torch.__version__}; Python {platform.python_version()}"


def render(
    args: argparse.Namespace,
    steps: dict[str, list[float]],
    loops: dict[str, list[float]],
    tokens: int,
) -> str:
    def row(name: str, t: dict[str, list[float]]) -> str:
        k, p = statistics.median(t["kpod"]), statistics.median(t["plain"])
        kc, pc = statistics.median(t["kpod_cpu"]), statistics.median(t["plain_cpu"])
        return (
            f"| {name} | {1000 * p:.1f} | {1000 * k:.1f} | {k / p:.3f}x | "
            f"{1000 * pc:.1f} | {1000 * kc:.1f} | **{kc / pc:.3f}x** | {len(t['kpod'])} |"
        )

    cmd = "python benches/bench_train_step.py " + " ".join(sys.argv[1:])
    return "\n".join(
        [
            SECTION,
            "",
            f"KPOD training step vs a plain `transformers.Trainer` SFT step (issue 5 target: <= 1.05x). "
            f"Random Llama, hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}; batch "
            f"{args.batch} x ~{tokens // args.batch} tokens (stage-1 KPOD batch; the plain step "
            f"trains the same tokens with the same labels); {'bf16 autocast' if args.bf16 else 'fp32'}. "
            "Medians per optimizer step over repetitions interleaved (KPOD, plain, plain, KPOD, "
            "...). The machine is shared with other jobs, so beside wall-clock time the table "
            "gives this process's CPU time, which other processes disturb far less; the CPU "
            f"ratio is the headline. Load average when the run ended: {os.getloadavg()[0]:.1f}.",
            "",
            f"Machine: {machine()}. Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. "
            f"Command: `{cmd.strip()}`.",
            "",
            "| measurement | plain wall ms | KPOD wall ms | KPOD / plain (wall) "
            "| plain CPU ms | KPOD CPU ms | KPOD / plain (CPU) | reps |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            row("`training_step` (forward + backward)", steps),
            row(
                f"`Trainer.train()` per optimizer step ({args.loop_steps} steps, data + optimizer + callbacks)",
                loops,
            ),
            "",
        ]
    )


def write_section(path: Path, text: str) -> None:
    old = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"
    if SECTION in old:
        start = old.index(SECTION)
        nxt = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + ("\n" + old[nxt + 1 :] if nxt != -1 else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=48)
    ap.add_argument("--n-steps", type=int, default=4)
    ap.add_argument("--step-len", type=int, default=48)
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--loop-steps", type=int, default=3)
    ap.add_argument("--loop-reps", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, print only")
    ap.add_argument("--output", default=str(ROOT / "benches" / "RESULTS.md"))
    args = ap.parse_args(argv)
    if args.quick:
        args.hidden, args.layers, args.vocab, args.reps, args.loop_steps, args.loop_reps = (
            64,
            2,
            4096,
            3,
            2,
            1,
        )
        args.examples = 16
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as out:
        kpod_tr, plain_tr, kbatch, pbatch, _ = build(args, out)
        n_items = int(kbatch["labels"][:, 1:].ne(-100).sum())
        tokens = int(kbatch["attention_mask"].sum())
        steps = time_steps(kpod_tr, plain_tr, kbatch, pbatch, n_items, args.reps)
        loops = time_loops(kpod_tr, plain_tr, args.loop_reps)
    text = render(args, steps, loops, tokens)
    print(text)
    if not args.quick:
        write_section(Path(args.output), text)
        print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
