"""``kpod weights``: train the keypoint weighting module, score datasets, view the weights.

No torch/transformers/datasets import at module import time.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kpod.precision import add_bf16_argument, parse_setting


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="keypoint token weighting: train, score, show",
        description="The keypoint token-weighting module (kpod-method section 2, Eqs. 2-7).",
    )
    sub = parser.add_subparsers(dest="weights_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    tr = sub.add_parser(
        "train",
        help="train the module on a prepared dataset and save it as safetensors",
        description=(
            "Train the weighting module with L_k = L_p + alpha * L_m on a prepared dataset "
            "(kpod data prepare). Any WeightingConfig / TrainingArguments option can be given "
            "in a YAML or JSON file with --config; the flags below override it. Resumes from "
            "the last checkpoint in --out."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tr.add_argument(
        "--data", required=True, help="prepared dataset (save_to_disk folder or .jsonl)"
    )
    tr.add_argument("--out", required=True, help="output folder (module + checkpoints)")
    tr.add_argument("--config", default=None, help="YAML/JSON file of WeightingConfig fields")
    tr.add_argument("--student", default=None, help="student model or alias (default smollm2-135m)")
    tr.add_argument("--predictor", default=None, help="answer predictor (default: the student)")
    tr.add_argument("--predictor-layers", type=int, default=None, help="keep its first L layers")
    tr.add_argument("--alpha", type=float, default=None, help="mask-loss weight (default 0.5)")
    tr.add_argument("--epochs", type=float, default=None, help="training epochs (default 3)")
    tr.add_argument("--max-prefixes", type=int, default=None, help="cap on prefixes per example")
    tr.add_argument("--max-length", type=int, default=None, help="skip longer examples")
    tr.add_argument(
        "--adapt",
        choices=["cot", "none"],
        default=None,
        help="task adaptation of the answer predictor before mask learning (default cot)",
    )
    tr.add_argument(
        "--target-keep",
        default=None,
        help="kept fraction alpha adapts to (default 0.5); 'none' keeps alpha fixed (the paper)",
    )
    add_bf16_argument(tr)
    tr.add_argument("--limit", type=int, default=None, help="train on the first N examples only")
    tr.set_defaults(func=_train)

    sc = sub.add_parser(
        "score",
        help="write the token_weights column for a prepared dataset",
        description=(
            "Score every rationale token of a prepared dataset with a trained module and save "
            "the dataset with a 'token_weights' column aligned with input_ids (1.0 outside "
            "the rationale)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sc.add_argument("--module", required=True, help="folder written by `kpod weights train`")
    sc.add_argument("--data", required=True, help="prepared dataset")
    sc.add_argument("--out", required=True, help="where to save the scored dataset")
    sc.add_argument("--batch-size", type=int, default=32)
    sc.set_defaults(func=_score)

    sh = sub.add_parser(
        "show",
        help="render token weights as HTML (and PNG), like the paper's Figure 2",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sh.add_argument("--data", required=True, help="scored dataset (with token_weights)")
    sh.add_argument("--out", required=True, help="HTML file to write")
    sh.add_argument("--png", default=None, help="also draw a PNG here")
    sh.add_argument("--tokenizer", default=None, help="tokenizer (default: from --module)")
    sh.add_argument("--module", default=None, help="module folder (its saved tokenizer is used)")
    sh.add_argument("-n", "--examples", type=int, default=10, help="rationales to show")
    sh.add_argument("--ids", nargs="*", default=None, help="show these example ids")
    sh.set_defaults(func=_show)


def _load_config_file(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    import json

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping of WeightingConfig fields")
    return data


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from kpod.data.prepared import load_prepared
    from kpod.models import load_tokenizer
    from kpod.weighting.train import WeightingConfig, train_weighting

    fields = _load_config_file(args.config)
    known = {f.name for f in dataclasses.fields(WeightingConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown WeightingConfig field(s) in {args.config}: {unknown}")
    overrides = {
        "student": args.student,
        "predictor": args.predictor,
        "predictor_layers": args.predictor_layers,
        "alpha": args.alpha,
        "num_train_epochs": args.epochs,
        "max_prefixes": args.max_prefixes,
        "max_length": args.max_length,
        "predictor_adapt": args.adapt,
    }
    if args.target_keep is not None:
        fields["target_keep"] = (
            None if str(args.target_keep).lower() == "none" else float(args.target_keep)
        )
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if args.bf16 != "auto" or "bf16" not in fields:
        fields["bf16"] = parse_setting(args.bf16)
    fields["output_dir"] = args.out
    config = WeightingConfig(**fields)
    data = load_prepared(args.data)
    if args.limit is not None:
        data = data.select(range(min(args.limit, len(data))))
    tokenizer = load_tokenizer(config.student)
    train_weighting(data, config, tokenizer)
    print(f"kpod weights train: module saved to {args.out}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from kpod.data.prepared import load_prepared, save_prepared
    from kpod.weighting.module import KeypointWeighting
    from kpod.weighting.score import score_dataset

    module = KeypointWeighting.load(args.module)
    tokenizer = _module_tokenizer(args.module)
    data = load_prepared(args.data)
    scored = score_dataset(data, module, tokenizer=tokenizer, batch_size=args.batch_size)
    save_prepared(scored, args.out)
    print(f"kpod weights score: {len(scored)} examples scored -> {args.out}")
    return 0


def _module_tokenizer(module_dir: str) -> Any:
    from kpod.models import load_tokenizer

    saved = Path(module_dir) / "tokenizer"
    if saved.is_dir():
        return load_tokenizer(str(saved))
    import json

    cfg = json.loads((Path(module_dir) / "weighting_config.json").read_text(encoding="utf-8"))
    return load_tokenizer(cfg["student"])


def _show(args: argparse.Namespace) -> int:
    from kpod.data.prepared import load_prepared
    from kpod.weighting.view import render_html, render_png

    if args.tokenizer is None and args.module is None:
        raise ValueError("give --tokenizer or --module so token ids can be turned into text")
    if args.tokenizer is not None:
        from kpod.models import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    else:
        tokenizer = _module_tokenizer(args.module)
    data = load_prepared(args.data)
    if "token_weights" not in data.column_names:
        raise ValueError(f"{args.data} has no token_weights column; run `kpod weights score` first")
    if args.ids:
        wanted = set(args.ids)
        rows = [r for r in data if r["id"] in wanted]
        missing = wanted - {r["id"] for r in rows}
        if missing:
            raise ValueError(f"no example with id(s) {sorted(missing)} in {args.data}")
    else:
        rows = [data[i] for i in range(min(args.examples, len(data)))]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(rows, tokenizer), encoding="utf-8")
    print(f"kpod weights show: {len(rows)} rationales -> {out}")
    if args.png:
        render_png(rows, tokenizer, args.png)
        print(f"kpod weights show: PNG -> {args.png}")
    return 0
