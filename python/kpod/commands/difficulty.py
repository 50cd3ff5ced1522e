"""``kpod difficulty``: Eq. 8 step difficulties under the pretrained student."""

from __future__ import annotations

import argparse
from typing import Any

from kpod.precision import add_bf16_argument


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "difficulty",
        help="score step difficulties (Eq. 8) with the pretrained student",
        description=(
            "Teacher-force every prepared example through the student (no gradients, batched) "
            "and store d_k, the token-weight-softmax average NLL of each rationale step, in a "
            "'step_difficulty' column. Needs the 'token_weights' column (kpod weights score) "
            "unless --uniform."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data", required=True, help="prepared dataset (save_to_disk folder or .jsonl)"
    )
    parser.add_argument("--model", required=True, help="student checkpoint or alias (smollm2-135m)")
    parser.add_argument(
        "--out", required=True, help="where to save the dataset with the new column"
    )
    parser.add_argument("--kind", default="auto", choices=["auto", "causal", "seq2seq"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--uniform",
        action="store_true",
        help="mean token NLL per step (the w.o.-sig-dif ablation) instead of the weighted one",
    )
    add_bf16_argument(parser, "score under bf16 autocast")
    parser.add_argument("--device", default=None, help="e.g. cuda:0; default cuda if available")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from kpod.data.prepared import load_prepared, save_prepared
    from kpod.models import load_student, load_tokenizer
    from kpod.precision import announce, resolve
    from kpod.training.difficulty import add_step_difficulty

    data = load_prepared(args.data)
    tok = load_tokenizer(args.model)
    model = load_student(args.model, kind=args.kind)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    precision = resolve(args.bf16, use_cpu=torch.device(device).type == "cpu")
    announce(precision, "step difficulties")
    data = add_step_difficulty(
        data,
        model,
        kind=args.kind,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        batch_size=args.batch_size,
        uniform=args.uniform,
        autocast_dtype=torch.bfloat16 if precision.bf16 else None,
    )
    save_prepared(data, args.out)
    print(f"kpod difficulty: {len(data)} examples scored -> {args.out}")
    return 0
