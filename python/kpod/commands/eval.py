"""``kpod eval``: greedy decoding accuracy with a 95% bootstrap interval."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="accuracy of a student by batched greedy decoding",
        description=(
            "Decode every question greedily with the template's prompt, extract the answer after "
            "'the answer is' (or the choice letter) and report accuracy with a 95%% bootstrap "
            "interval. --data may be repeated as NAME=PATH for out-of-distribution sets (e.g. "
            "train on GSM8K, test on SVAMP and ASDiv). Any format kpod.data reads works."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="trained student folder (LoRA adapters too)")
    parser.add_argument(
        "--tokenizer", default=None, help="tokenizer (default: the model folder's own)"
    )
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="[NAME=]PATH",
        help="evaluation records; repeat for several sets",
    )
    parser.add_argument(
        "--out", required=True, help="folder for metrics.json and predictions-NAME.jsonl"
    )
    parser.add_argument("--kind", default="auto", choices=["auto", "causal", "seq2seq"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first N records of each set"
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="e.g. cuda:0; default cuda if available")
    parser.add_argument(
        "--dtype",
        default="auto",
        help="weights dtype for decoding: auto (bfloat16 where the device computes it "
        "natively, float32 elsewhere), float32, bfloat16 or float16",
    )
    parser.set_defaults(func=_run)


def _sets(specs: list[str]) -> dict[str, str]:
    from pathlib import Path

    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).stem, spec
        if name in out:
            raise ValueError(f"--data name {name!r} given twice; use NAME=PATH to tell them apart")
        out[name] = path
    return out


def _run(args: argparse.Namespace) -> int:
    import itertools

    import torch

    from kpod.data import read_records
    from kpod.evaluation import evaluate_many
    from kpod.models import load_student, load_tokenizer
    from kpod.precision import resolve_dtype

    sets = {
        name: list(itertools.islice(read_records(path, require_rationale=False), args.limit))
        for name, path in _sets(args.data).items()
    }
    tok = load_tokenizer(args.tokenizer or args.model)
    model = load_student(args.model, kind=args.kind, dtype=resolve_dtype(args.dtype))
    model.to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    results = evaluate_many(
        model,
        tok,
        sets,
        output_dir=args.out,
        kind=args.kind,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        n_resamples=args.bootstrap,
        seed=args.seed,
    )
    for name, m in results.items():
        print(
            f"{name}: accuracy {100 * m['accuracy']:.2f}% "
            f"[{100 * m['ci_low']:.2f}, {100 * m['ci_high']:.2f}] (n={m['n']})"
        )
    return 0
