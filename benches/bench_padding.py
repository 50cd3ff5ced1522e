"""How much of a KPOD training batch is padding, on real rationales.

Tokenizes SVAMP's MCC-KD train rationales (the paper's 700-question split, the
first teacher-agreeing rationale per question) and GSM8K's human solutions with
the SmolLM2-135M tokenizer, draws training batches as the Trainer does
(``train_sampling_strategy="random"``, the default) and as
``"group_by_length"`` (transformers' LengthGroupedSampler: megabatches of 50
batches sorted by length), and reports the share of padding tokens. A causal
student reads every example whole at every stage (given steps are input), so
these shares hold at every stage of the curriculum.

    python benches/bench_padding.py                  # needs runs/splits (kpod data splits)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "scripts"))


def padding_share(lengths: list[int], batches: list[list[int]]) -> float:
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - real / padded


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splits", default=str(ROOT / "runs" / "splits"))
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=8, help="epochs of batches drawn per sampler")
    args = ap.parse_args()

    import torch
    from real_weighting_run import load_rationales
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from kpod.bench import print_run_info
    from kpod.data import prepare_examples
    from kpod.models import load_tokenizer

    print_run_info("python benches/bench_padding.py " + " ".join(sys.argv[1:]))
    tok = load_tokenizer("smollm2-135m")
    print("| rationales | examples | mean tokens | random batches | grouped by length |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in ("svamp", "gsm8k"):
        data = load_rationales(name, 10**9 if name == "svamp" else 7000, Path(args.splits))
        lengths = [len(x) for x in prepare_examples(data, tok)["input_ids"]]
        bs = args.batch_size
        shares: dict[str, list[float]] = {"random": [], "grouped": []}
        for epoch in range(args.epochs):
            g = torch.Generator().manual_seed(epoch)
            order = torch.randperm(len(lengths), generator=g).tolist()
            shares["random"].append(
                padding_share(lengths, [order[i : i + bs] for i in range(0, len(order), bs)])
            )
            sampler = LengthGroupedSampler(bs, lengths=lengths, generator=g)
            grouped = list(sampler)
            shares["grouped"].append(
                padding_share(lengths, [grouped[i : i + bs] for i in range(0, len(grouped), bs)])
            )
        mean = sum(lengths) / len(lengths)
        r = sum(shares["random"]) / args.epochs
        gr = sum(shares["grouped"]) / args.epochs
        print(f"| {name} | {len(lengths)} | {mean:.0f} | {100 * r:.1f}% | {100 * gr:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
