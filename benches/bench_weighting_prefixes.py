"""L_p over every prefix: one packed forward per example vs one forward per prefix.

The weighting module's prefix loss (Eq. 5) reads the question and the masked
rationale up to every step boundary. Unpacked, each of an example's n prefixes
is its own sequence (prompt + steps < k + answer part), so a batch costs about
n * (P + R / 2) tokens; packed, the rationale is read once and the answer part
is appended once per boundary behind a block attention mask (P + R + n * A
tokens). Both give the same loss (tests/test_weighting_prefixes.py).

This times forward + backward of L_p (to the masked input embeddings, the
frozen-predictor case) on a randomly initialised SmolLM2-135M-shaped Llama,
for batches shaped like SVAMP's MCC-KD rationales (prompt 60 tokens, 5 steps of
25, answer part 10) and GSM8K's (prompt 70, 8 steps of 20, answer 10).

    python benches/bench_weighting_prefixes.py            # both shapes, batch 8
    python benches/bench_weighting_prefixes.py --quick    # a 2-layer model, for a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

SHAPES = {"svamp-like": (60, 5, 25, 10), "gsm8k-like": (70, 8, 20, 10)}


def batch(prompt: int, steps: int, step_len: int, answer: int, n: int, vocab: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        sid = [-1] * prompt + [k for k in range(steps) for _ in range(step_len)] + [-2] * answer
        am = [0] * (prompt + steps * step_len) + [0, 0, 0] + [1] * (answer - 4) + [0]
        ids = torch.randint(0, vocab, (len(sid),), generator=g).tolist()
        rows.append({"input_ids": ids, "step_ids": sid, "answer_mask": am})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from kpod.bench import print_run_info
    from kpod.precision import detect
    from kpod.weighting.module import KeypointWeighting, ModuleConfig
    from kpod.weighting.train import WeightingCollator

    if args.threads:
        torch.set_num_threads(args.threads)
    print_run_info("python benches/bench_weighting_prefixes.py " + " ".join(sys.argv[1:]))
    caps = detect()
    print(f"CPU: {caps.cpu_description()}, torch threads {torch.get_num_threads()}")
    torch.manual_seed(0)
    layers, hidden, inter = (2, 64, 128) if args.quick else (30, 576, 1536)
    cfg = LlamaConfig(
        vocab_size=49152,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=9 if not args.quick else 4,
        num_key_value_heads=3 if not args.quick else 2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    model: Any = LlamaForCausalLM(cfg)
    model.requires_grad_(False)
    emb: Any = model.get_input_embeddings().weight.detach()
    module = KeypointWeighting(
        ModuleConfig(vocab_size=emb.shape[0], embed_dim=emb.shape[1]), emb, model
    )
    collate = WeightingCollator(pad_token_id=0)
    print("| shape | prefixes per example | unpacked s | packed s | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, shape in SHAPES.items():
        b = collate(batch(*shape, n=args.batch_size, vocab=cfg.vocab_size))
        base = model.get_input_embeddings()(b["input_ids"])
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeats):
            for pack in (False, True):  # alternated
                module.pack_prefixes = pack
                x = base.clone().requires_grad_(True)
                t0 = time.perf_counter()
                with torch.autocast("cpu", torch.bfloat16, enabled=caps.cpu_native_bf16):
                    loss = module.prefix_loss(x, b["input_ids"], b["step_ids"], b["answer_mask"])
                loss.backward()
                times[pack].append(time.perf_counter() - t0)
        un, pk = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {name} | {shape[1]} | {un:.2f} | {pk:.2f} | {un / pk:.1f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
