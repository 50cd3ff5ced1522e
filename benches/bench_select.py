"""Full scheduler benchmark recorded in benches/RESULTS.md.

    .venv/bin/python benches/bench_select.py --json runs/bench/select.jsonl > runs/bench/select.md

Times kpod.select's three algorithms at n = 1e4..1e7 with K = 1000 and K = 5
(eps 0.1, budget 10 % of the total cost, each case in its own process so its
peak RSS is its own), the same instances through apricot-select 0.6.1 and
submodlib-py 0.0.3 (their cost-benefit lazy greedy on the identical objective,
killed at --peer-cap seconds), a 50-stage curriculum over 1M questions, and an
audit of every peer optimizer's cost handling. See ``kpod.bench`` for how each
figure is made (every option of ``kpod bench`` works here too) and
``benches/peers.py`` for the peers and the audit, which run after kpod's cases.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

try:
    from kpod import bench
except ImportError:  # running from a checkout without `maturin develop`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    from kpod import bench

import peers  # benches/peers.py (this directory is on sys.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    bench.add_arguments(parser, full=True)
    peers.add_arguments(parser)
    parser.add_argument("--output", "-o", type=Path, default=None, help="write the markdown here")
    args = parser.parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else argv
    command = " ".join(
        [".venv/bin/python benches/bench_select.py", *(shlex.quote(a) for a in argv_used)]
    )
    report = bench.run_benchmarks(args)
    peer_rows, audit_rows = [], []
    sink = bench.JsonLines(args.json)
    if args.peers:
        peer_rows = peers.run_peers(args, report.select_rows, sink)
    if args.audit:
        bench._progress("bench_select: peer cost-handling audit ...")
        audit_rows = peers.run_audit(seed=args.seed, mem_cap=int(args.mem_cap_gib * (1 << 30)))
        for row in audit_rows:
            sink.write({"kind": "audit", **row})
    if args.peers or args.audit:
        report.end = bench.machine_info()
    text = bench.render(
        report,
        command,
        after_select=peers.peer_section(peer_rows),
        after_curriculum=peers.audit_section(audit_rows),
    )
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
