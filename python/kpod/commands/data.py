"""``kpod data``: inspect rationale files, prepare student-ready datasets, rebuild the paper's splits.

No torch/transformers/datasets import at module import time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def _formats() -> tuple[str, ...]:
    from kpod.data.loaders import FORMATS

    return ("auto", *FORMATS)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data",
        help="inspect, prepare and split rationale data",
        description="Rationale data: inspect files, write student-ready datasets, rebuild the paper's splits.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    def add_input(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "path", help="input file (or a dss-palm 'llm' folder); see docs/data.md for formats"
        )
        p.add_argument(
            "--format", default="auto", choices=_formats(), help="input format (default: detect)"
        )
        p.add_argument(
            "--columns",
            default=None,
            help="generic formats: schema field to column, e.g. question=input,rationale=output,answer=label",
        )
        p.add_argument(
            "--multi",
            default="all",
            choices=("all", "first"),
            help="several rationales per question: one example each (all) or the first only",
        )
        p.add_argument(
            "--source", default=None, help="dss-palm: the question file the completions align with"
        )
        p.add_argument(
            "--split", default=None, help="dss-palm folder: 'train' or 'test' completion files"
        )
        p.add_argument(
            "--skip-invalid",
            action="store_true",
            help="skip malformed records instead of stopping; each is listed in the skip report",
        )
        p.add_argument("--report", default=None, help="where to write the skip report (JSON lines)")
        p.add_argument("--limit", type=int, default=None, help="use only the first N records")

    ins = sub.add_parser(
        "inspect",
        help="counts, steps per rationale, tokens per step, teacher answer agreement",
        description="Summarise a rationale file or a prepared dataset folder.",
    )
    add_input(ins)
    ins.add_argument(
        "--tokenizer", default=None, help="also count tokens per step with this tokenizer"
    )
    ins.add_argument("--examples", type=int, default=1, help="show this many segmented examples")
    ins.add_argument("--json", action="store_true", help="print the summary as JSON")
    ins.set_defaults(func=_inspect)

    prep = sub.add_parser(
        "prepare",
        help="write a student-ready dataset (input_ids, step_ids, answer_mask) to disk",
        description=(
            "Load, validate, optionally teacher-filter, segment and tokenize a rationale file and "
            "save it with datasets' save_to_disk (the columns of docs/architecture.md)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_input(prep)
    prep.add_argument(
        "--tokenizer", required=True, help="student tokenizer: a local path or 'smollm2-135m'"
    )
    prep.add_argument("--out", required=True, help="output folder (datasets.save_to_disk)")
    prep.add_argument(
        "--kind", default="causal", choices=("causal", "seq2seq"), help="student type"
    )
    prep.add_argument(
        "--filter",
        default="auto",
        choices=("auto", "drop", "keep", "off"),
        help="teacher filtering: drop rationales whose answer disagrees with gold, keep them "
        "(with teacher_agrees column), or off; auto = off for GSM8K human solutions, else drop",
    )
    prep.add_argument(
        "--clusters",
        type=int,
        default=0,
        help="add a 'cluster' column with K-means over question embeddings (K; 0 = leave to training)",
    )
    prep.add_argument(
        "--model",
        default=None,
        help="model whose input embeddings cluster questions (default: --tokenizer)",
    )
    prep.add_argument("--seed", type=int, default=0, help="K-means seed")
    prep.add_argument(
        "--num-proc", type=int, default=None, help="worker processes for tokenization"
    )
    prep.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    prep.set_defaults(func=_prepare)

    spl = sub.add_parser(
        "splits",
        help="rebuild the paper's train/dev/test splits as JSONL record files",
        description=(
            "Rebuild KPOD's (= MCC-KD's) splits offline from split_ids.json and the original datasets. "
            "The MCC-KD files are read from --data-root, never shipped."
        ),
    )
    spl.add_argument("dataset", choices=("gsm8k", "svamp", "csqa", "asdiv", "all"))
    spl.add_argument(
        "--data-root", default=None, help="data folder (default: $KPOD_DATA_ROOT or ../shared/data)"
    )
    spl.add_argument(
        "--split-ids", default=None, help="split_ids.json (default: DATA_ROOT/mcc-kd-splits/)"
    )
    spl.add_argument("--out", default=None, help="write <dataset>_<split>.jsonl files here")
    spl.add_argument(
        "--rationales",
        default="auto",
        choices=("auto", "none"),
        help="attach offline teacher rationales",
    )
    spl.add_argument(
        "--multi",
        default="all",
        choices=("all", "first"),
        help="SVAMP: all 10 GPT-3.5 rationales or the first",
    )
    spl.set_defaults(func=_splits)


# ----------------------------------------------------------------------------- helpers


def _parse_columns(spec: str | None) -> dict[str, str] | None:
    if not spec:
        return None
    out = {}
    for part in spec.split(","):
        if "=" not in part:
            raise ValueError(f"--columns: expected field=column pairs, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _reader_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"multi": args.multi}
    cols = _parse_columns(args.columns)
    if cols:
        opts["columns"] = cols
    if args.source:
        opts["source"] = args.source
    if args.split:
        opts["split"] = args.split
    return opts


def _read(args: argparse.Namespace) -> tuple[list[dict[str, Any]], Any, str]:
    from itertools import islice

    from kpod.data import SkipReport, detect_format, read_records

    fmt = detect_format(args.path) if args.format == "auto" else args.format
    report = SkipReport()
    it = read_records(
        args.path,
        format=fmt,
        skip_invalid=args.skip_invalid,
        report=report,
        **_reader_options(args),
    )
    records = list(islice(it, args.limit) if args.limit else it)
    if args.skip_invalid:
        dest = Path(args.report) if args.report else None
        if dest is None and getattr(args, "out", None):
            dest = Path(args.out).with_name(Path(args.out).name + ".skipped.jsonl")
        if dest is not None and len(report):
            report.write(dest)
            print(f"{report.summary()}\nskip report: {dest}", file=sys.stderr)
        elif len(report):
            print(report.summary() + "\n(pass --report FILE to save the list)", file=sys.stderr)
            for s in report.skipped[:20]:
                print(f"  {s.source}, {s.location}, {s.field}: {s.reason}", file=sys.stderr)
    elif args.report:
        report.write(args.report)
    if not records:
        raise ValueError(f"{args.path}: no valid records")
    return records, report, fmt


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    vs = sorted(values)
    return {
        "mean": round(statistics.fmean(vs), 2),
        "median": float(statistics.median(vs)),
        "min": float(vs[0]),
        "p95": float(vs[min(len(vs) - 1, int(0.95 * len(vs)))]),
        "max": float(vs[-1]),
    }


def _fmt_stats(name: str, s: dict[str, float]) -> str:
    if not s:
        return f"{name:24s} -"
    return f"{name:24s} mean {s['mean']:.2f}  median {s['median']:g}  min {s['min']:g}  p95 {s['p95']:g}  max {s['max']:g}"


def _is_prepared(path: Path) -> bool:
    return path.is_dir() and (path / "dataset_info.json").is_file()


def _token_stats(ds: Any) -> dict[str, Any]:
    per_step: list[float] = []
    seq: list[float] = []
    for sids in ds["step_ids"]:
        seq.append(len(sids))
        counts: dict[int, int] = {}
        for s in sids:
            if s >= 0:
                counts[s] = counts.get(s, 0) + 1
        per_step += list(counts.values())
    return {"tokens_per_step": _stats(per_step), "tokens_per_example": _stats(seq)}


# ----------------------------------------------------------------------------- commands


def _inspect(args: argparse.Namespace) -> int:
    from kpod.data import segment
    from kpod.data.filtering import filter_by_answer

    path = Path(args.path)
    summary: dict[str, Any] = {"path": str(path)}
    if _is_prepared(path):
        import datasets

        ds = datasets.load_from_disk(str(path))
        summary.update(kind="prepared", rows=len(ds), columns=ds.column_names)
        summary["steps_per_rationale"] = _stats([float(n) for n in ds["n_steps"]])
        summary.update(_token_stats(ds))
        try:
            summary["prepared_with"] = json.loads(ds.info.description or "{}").get("kpod_prepared")
        except json.JSONDecodeError:
            pass
        examples = [
            {"id": r["id"], "steps": r["steps"]}
            for r in ds.select(range(min(args.examples, len(ds))))
        ]
    else:
        records, report, fmt = _read(args)
        with_rationale = [r for r in records if r["rationale"].strip()]
        summary.update(
            kind="records",
            format=fmt,
            records=len(records),
            questions=len({r["question"] for r in records}),
            with_rationale=len(with_rationale),
            multiple_choice=sum(1 for r in records if r["choices"]),
            skipped=len(report),
        )
        segs = [segment(r["rationale"]) for r in with_rationale]
        summary["steps_per_rationale"] = _stats([float(len(s.steps)) for s in segs])
        summary["with_answer_sentence"] = sum(1 for s in segs if s.answer_sentence)
        if with_rationale:
            _, rep = filter_by_answer(with_rationale, keep_disagreeing=True)
            summary["answer_agreement"] = {
                "agree": rep.agree,
                "disagree": rep.disagree,
                "no_answer": rep.no_answer,
                "total": rep.total,
            }
        if args.tokenizer and with_rationale:
            from kpod.data import prepare_examples
            from kpod.models import load_tokenizer

            ds = prepare_examples(with_rationale, load_tokenizer(args.tokenizer))
            summary.update(_token_stats(ds))
        examples = [
            {"id": r["id"], "steps": s.steps, "answer": r["answer"]}
            for r, s in list(zip(with_rationale, segs, strict=True))[: args.examples]
        ]
    summary["examples"] = examples
    if args.json:
        print(json.dumps(summary, indent=1, ensure_ascii=False))
        return 0
    for key in (
        "path",
        "kind",
        "format",
        "records",
        "questions",
        "with_rationale",
        "multiple_choice",
        "skipped",
        "rows",
        "with_answer_sentence",
        "prepared_with",
    ):
        if key in summary:
            print(f"{key:24s} {summary[key]}")
    print(_fmt_stats("steps per rationale", summary.get("steps_per_rationale", {})))
    for key in ("tokens_per_step", "tokens_per_example"):
        if key in summary:
            print(_fmt_stats(key.replace("_", " "), summary[key]))
    if "answer_agreement" in summary:
        a = summary["answer_agreement"]
        pct = 100.0 * a["agree"] / a["total"] if a["total"] else 0.0
        print(
            f"{'answer agreement':24s} {a['agree']}/{a['total']} ({pct:.1f}%) agree, {a['disagree']} disagree, {a['no_answer']} state no answer"
        )
    for ex in examples:
        print(f"\nexample {ex['id']}" + (f" (answer {ex['answer']})" if "answer" in ex else ""))
        for k, s in enumerate(ex["steps"]):
            print(f"  [{k}] {s}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    t0 = time.time()
    records, report, fmt = _read(args)
    missing = [r["id"] for r in records if not r["rationale"].strip()]
    if missing:
        raise ValueError(
            f"{args.path}: {len(missing)} record(s) have no rationale (e.g. {missing[:3]}); "
            "a student-ready dataset needs one per example"
        )
    from kpod.data.prepared import save_prepared
    from kpod.models import load_tokenizer
    from kpod.pipeline.steps import prepare_training_data

    policy = args.filter
    if policy == "auto":
        policy = "off" if fmt == "gsm8k" else "drop"
    meta: dict[str, Any] = {
        "input": str(args.path),
        "format": fmt,
        "records": len(records),
        "skipped": len(report),
    }
    keep = ["choices"] + (["teacher_answer", "teacher_agrees"] if policy == "keep" else [])
    ds, frep = prepare_training_data(
        records,
        load_tokenizer(args.tokenizer),
        kind=args.kind,
        teacher_filter=policy,
        keep_columns=keep,
        num_proc=args.num_proc,
    )
    if frep is not None:
        meta["filter"] = {k: v for k, v in vars(frep).items() if k != "dropped_ids"}
        meta["filter"]["dropped_ids"] = frep.dropped_ids
    if args.clusters:
        from kpod.data.clusters import add_clusters
        from kpod.models import load_model

        model = load_model(args.model or args.tokenizer, kind=args.kind)
        ds = add_clusters(ds, model=model, k=args.clusters, seed=args.seed)
    meta.update(
        examples=len(ds),
        tokenizer=args.tokenizer,
        kind=args.kind,
        filter_policy=policy,
        clusters=args.clusters,
        command="kpod " + " ".join(sys.argv[1:]),
        seconds=round(time.time() - t0, 1),
    )
    save_prepared(
        ds, out, extra={"kpod_prepare.json": json.dumps(meta, indent=1, ensure_ascii=False)}
    )
    n_steps = list(ds["n_steps"])
    print(
        f"wrote {len(ds)} examples to {out} ({sum(n_steps)} steps, "
        f"{statistics.fmean(n_steps):.2f} per rationale) in {meta['seconds']} s"
    )
    return 0


def _n_questions(recs: list[dict[str, Any]]) -> int:
    # several teacher rationales per question share the question (and its choices)
    return len({(r["question"], tuple(r["choices"]), r["answer"]) for r in recs})


def _splits(args: argparse.Namespace) -> int:
    from kpod.data.splits import DATASETS, PAPER_SIZES, paper_splits, write_splits

    names = DATASETS if args.dataset == "all" else (args.dataset,)
    for name in names:
        splits = paper_splits(
            name,
            data_root=args.data_root,
            split_ids=args.split_ids,
            rationales=args.rationales,
            multi=args.multi,
        )
        for split, recs in splits.items():
            questions = _n_questions(recs)
            with_r = sum(1 for r in recs if r["rationale"].strip())
            paper = PAPER_SIZES[name].get(split)
            print(
                f"{name:6s} {split:17s} {questions:6d} distinct questions (expected {paper}), {len(recs):6d} examples, {with_r} with rationale"
            )
        if args.out:
            paths = write_splits(splits, args.out, prefix=f"{name}_")
            for p in paths.values():
                print(f"  wrote {p}")
    return 0
