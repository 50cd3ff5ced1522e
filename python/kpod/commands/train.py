"""``kpod train``: KPOD progressive distillation of a student on prepared examples."""

from __future__ import annotations

import argparse
from typing import Any

from kpod.commands import parse_set


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="progressive keypoint-weighted distillation (KpodTrainer)",
        description=(
            "Train a student with KPOD: one curriculum stage per epoch chosen by the native "
            "scheduler, keypoint-weighted loss on what the student writes. Options come from a "
            "YAML file of KpodConfig fields (TrainingArguments plus kind, stages, p, c0, beta, "
            "delta_steps, eps, algorithm, rescore_every, use_lora, and the ablation flags "
            "equal_token_weights, uniform_difficulty, no_progression, no_diversity); "
            "--set KEY=VALUE overrides single fields. Resumable: rerun with --resume."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="student checkpoint or alias (smollm2-135m)")
    parser.add_argument(
        "--data",
        required=True,
        help="prepared dataset with token_weights, step_difficulty, cluster",
    )
    parser.add_argument(
        "--output-dir", required=True, help="checkpoints, final model, kpod_stages.jsonl"
    )
    parser.add_argument("--config", default=None, help="YAML file of KpodConfig fields")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=parse_set,
        default=[],
        metavar="KEY=VALUE",
        help="override one KpodConfig field, the value read as YAML (as in kpod run), repeatable",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in --output-dir (if there is one)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from kpod.data.prepared import load_prepared
    from kpod.models import load_student, load_tokenizer
    from kpod.training.config import config_from_dict, load_config
    from kpod.training.trainer import train_kpod

    overrides = dict(args.overrides)
    overrides["output_dir"] = args.output_dir
    if args.config:
        config = load_config(args.config, **overrides)
    else:
        config = config_from_dict(overrides)
    tok = load_tokenizer(args.model)
    model = load_student(args.model, kind=config.kind)
    data = load_prepared(args.data)
    trainer = train_kpod(
        model,
        tok,
        data,
        config,
        args.output_dir,
        resume_from_checkpoint=True if args.resume else None,
    )
    print(
        f"kpod train: {trainer.state.global_step} steps, {trainer.schedule.stage} stages "
        f"({config.ablation_name}) -> {args.output_dir}"
    )
    return 0
