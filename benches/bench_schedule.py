"""``kpod schedule`` at scale: time and memory of a whole run, input to output.

    .venv/bin/python benches/bench_schedule.py                 # 1e7 questions, 50 stages
    .venv/bin/python benches/bench_schedule.py --questions 1e6 --output parquet

The instance: steps per question uniform in 1..8 (4.5 on average), step
difficulties uniform in [0.05, 1), cluster ids uniform in [0, K), K = 1000,
seed 0, written as a CSR NPZ (or Parquet with a list column). A fresh process
then reads it with ``kpod.schedule_io.read_schedule_input``, records its RSS,
resets the peak (``/proc/self/clear_refs``) and runs everything ``kpod
schedule`` does after reading (``run_schedule``: the curriculum, the state and
per-stage parts after every stage, the output in the wide layout, the
summary). Reported: the input arrays' size, RSS after reading, the peak RSS
after that and its excess over the RSS after reading (the target: <= 2 GiB
at 1e7 questions), and the seconds of reading, of the stages (the
``advance`` calls), and of the whole run after reading.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

GIB = 1024**3


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) * 1024 if m else 0


def make_input(path: Path, n: int, k: int, fmt: str, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    difficulty = rng.uniform(0.05, 1.0, size=int(offsets[-1]))
    clusters = rng.integers(0, k, size=n)
    if fmt == "npz":
        np.savez(path, step_difficulty=difficulty, step_offsets=offsets, cluster=clusters)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(difficulty))
        pq.write_table(pa.table({"cluster": clusters, "step_difficulty": lists}), path)
    return {"questions": n, "steps": int(offsets[-1])}


def child(spec: dict[str, Any]) -> dict[str, Any]:
    from kpod.cli import build_parser
    from kpod.commands.schedule import run_schedule
    from kpod.schedule_io import read_schedule_input

    rss_start = _status("VmRSS")
    t0 = time.perf_counter()
    inp = read_schedule_input(spec["input"])
    read_s = time.perf_counter() - t0
    input_bytes = sum(
        a.nbytes for a in (inp.step_difficulty, inp.step_offsets, inp.clusters, inp.question_ids)
    )
    rss_read = _status("VmRSS")
    hwm_read = _status("VmHWM")
    reset = False
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    argv = ["schedule", spec["input"], "-o", spec["output"], "--no-progress"]
    argv += ["--stages", str(spec["stages"]), "--output-layout", spec["layout"]]
    args = build_parser().parse_args(argv)
    import kpod

    # CPU seconds of the advance calls: on a shared machine their wall time
    # includes waiting for a core.
    advance_cpu = [0.0]
    advance = kpod.Curriculum.advance

    def timed(self: Any) -> Any:
        c = time.process_time()
        try:
            return advance(self)
        finally:
            advance_cpu[0] += time.process_time() - c

    kpod.Curriculum.advance = timed  # type: ignore[method-assign]
    out = io.StringIO()
    cpu1 = time.process_time()
    t1 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        run_schedule(inp, args, read_seconds=read_s)
    run_s = time.perf_counter() - t1
    run_cpu = time.process_time() - cpu1
    summary = (
        Path(spec["output"])
        .with_suffix("")
        .with_name(Path(spec["output"]).with_suffix("").name + ".summary.csv")
    )
    stage_s = sum(float(line.split(",")[-1]) for line in summary.read_text().splitlines()[1:])
    return {
        "rss_start": rss_start,
        "input_bytes": input_bytes,
        "rss_after_read": rss_read,
        "hwm_read": hwm_read,
        "peak_after_read": _status("VmHWM") if reset else max(hwm_read, _status("VmHWM")),
        "peak_reset": reset,
        "read_s": read_s,
        "stages_s": stage_s,
        "run_s": run_s,
        "run_cpu_s": run_cpu,
        "stages_cpu_s": advance_cpu[0],
        "output_bytes": Path(spec["output"]).stat().st_size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--questions", type=float, default=1e7)
    ap.add_argument("--stages", type=int, default=50)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--input", choices=("npz", "parquet"), default="npz")
    ap.add_argument("--output", choices=("npz", "parquet", "jsonl"), default="npz")
    ap.add_argument("--layout", choices=("wide", "long"), default="wide")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    from kpod import bench

    bench.print_run_info("python benches/bench_schedule.py " + shlex.join(sys.argv[1:]))
    flags = sorted(
        set(re.findall(r"\b(amx_bf16|avx512_bf16)\b", Path("/proc/cpuinfo").read_text()))
    )
    print(f"CPU bf16 flags: {', '.join(flags) or 'none'}\n")
    n = int(args.questions)
    with tempfile.TemporaryDirectory(prefix="kpod-bench-schedule-") as tmp:
        src = Path(tmp) / f"questions.{args.input}"
        t0 = time.perf_counter()
        size = make_input(src, n, args.clusters, args.input)
        gen_s = time.perf_counter() - t0
        spec = {
            "input": str(src),
            "output": str(Path(tmp) / f"given.{args.output}"),
            "stages": args.stages,
            "layout": args.layout,
        }
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"{size['questions']:.0e} questions, {size['steps']} steps, K = {args.clusters}, "
        f"{args.stages} stages; input {args.input} written in {gen_s:.1f} s\n"
    )
    print(
        "| input | output | input arrays | RSS after read | peak after read | peak - RSS after read "
        "| read | stages (advance), wall (CPU) | after read, total wall (CPU) | output size |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {args.input} | {args.output} {args.layout} | {r['input_bytes'] / GIB:.2f} GiB "
        f"| {r['rss_after_read'] / GIB:.2f} GiB | {r['peak_after_read'] / GIB:.2f} GiB "
        f"| {(r['peak_after_read'] - r['rss_after_read']) / GIB:.2f} GiB | {r['read_s']:.1f} s "
        f"| {r['stages_s']:.1f} s ({r['stages_cpu_s']:.1f} s) | {r['run_s']:.1f} s ({r['run_cpu_s']:.1f} s) "
        f"| {r['output_bytes'] / 2**20:.0f} MiB |"
    )
    if not r["peak_reset"]:
        print("\n(peak could not be reset after reading: it includes the read's own peak)")


if __name__ == "__main__":
    main()
