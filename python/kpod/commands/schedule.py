"""``kpod schedule``: a KPOD curriculum from a table of step difficulties, with numpy alone.

For data teams that train with their own trainer: read questions with their
step difficulties and cluster ids (Parquet, Arrow/``datasets`` folder, JSONL,
CSV, NPZ; see :mod:`kpod.schedule_io`), run :class:`kpod.Curriculum` for
``--stages`` stages, and write every question's given-step count at stages
0..T plus a stage summary. The run saves its state after every stage, so an
interrupted run continues with ``--resume``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

_STATE_FORMAT = "kpod.schedule/1"
_SUMMARY_COLUMNS = (
    "stage",
    "D",
    "H",
    "selected",
    "eligible",
    "bound",
    "value",
    "evaluations",
    "seconds",
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one (not None or False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def register(subparsers: Any) -> None:
    from kpod.schedule import ALGORITHMS

    p = subparsers.add_parser(
        "schedule",
        help="a KPOD curriculum from a table of step difficulties and clusters (numpy only)",
        description=(
            "Read questions with their step difficulties and cluster ids, run the KPOD "
            "curriculum (kpod.Curriculum) and write the given-step count of every question at "
            "stages 0..T, plus a stage summary (printed, and written beside the output as "
            "OUTPUT_STEM.summary.csv). Input: Parquet, an Arrow file or datasets folder (these "
            'two need pyarrow: pip install "kpod[parquet]"), JSONL, CSV or NPZ; one row per '
            "question with a list of step difficulties, or one row per step with a question "
            "id. Output by suffix: .parquet, .jsonl or .npz. After stage T every question "
            "writes its whole rationale (0 given steps)."
        ),
        formatter_class=_HelpFormatter,
    )
    p.add_argument("input", help="table of questions (or steps), or a datasets folder")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="where to write the given steps (.parquet, .jsonl or .npz); needed unless --preview",
    )
    p.add_argument("--stages", type=int, required=True, help="T, the number of stages")
    p.add_argument("--p", type=float, default=0.5, help="pace exponent p of D(t) (Eq. 10)")
    p.add_argument("--c0", type=float, default=0.3, help="C0 as a fraction of the total difficulty")
    p.add_argument("--beta", type=float, default=12.0, help="weight of the diversity term")
    p.add_argument(
        "--delta-steps", type=int, default=1, help="steps a selected question moves per stage"
    )
    p.add_argument("--eps", type=float, default=0.1, help="accuracy of the threshold algorithm")
    p.add_argument("--algorithm", default="threshold", choices=ALGORITHMS, help="the solver")
    p.add_argument(
        "--format",
        default="auto",
        choices=("auto", "parquet", "arrow", "jsonl", "csv", "npz"),
        help="input format (auto: by suffix; a folder is a datasets folder)",
    )
    p.add_argument(
        "--layout",
        default="auto",
        choices=("auto", "questions", "steps"),
        help="input rows: one per question (a list of difficulties) or one per step "
        "(auto: by the difficulty column's type)",
    )
    p.add_argument(
        "--id-column",
        default=None,
        help="question id column (default: 'question_id' or 'id' if present; one row per "
        "question may have none: the row number is the id)",
    )
    p.add_argument("--cluster-column", default="cluster", help="cluster id column")
    p.add_argument("--difficulty-column", default="step_difficulty", help="difficulty column")
    p.add_argument(
        "--step-column",
        default=None,
        help="one row per step: the column ordering the steps of a question (default: 'step' "
        "if present; '' for the file order)",
    )
    p.add_argument(
        "--output-layout",
        default="wide",
        choices=("wide", "long"),
        help="wide: one row per question with its count at every stage; long: one row per "
        "(question, stage)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run that wrote OUTPUT (state saved after every stage)",
    )
    p.add_argument(
        "--preview", action="store_true", help="print the stage summary only; write nothing"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


# ----------------------------------------------------------------------------- helpers


def _paths(output: Path) -> tuple[Path, Path, Path]:
    """(summary CSV, state JSON, folder of per-stage parts) beside ``output``."""
    stem = output.with_suffix("")
    return (
        stem.with_name(stem.name + ".summary.csv"),
        output.with_name(output.name + ".state.json"),
        output.with_name(output.name + ".parts"),
    )


def _fingerprint(inp: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in (inp.step_offsets, inp.clusters, inp.step_difficulty):
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


class _Progress:
    """tqdm when it is installed (the train extra), else one plain line per stage."""

    def __init__(self, total: int, first: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, first, enabled
        self.bar: Any = None
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ModuleNotFoundError:
            return
        self.bar = tqdm(total=total, initial=first, desc="stages", unit="stage", file=sys.stderr)

    def update(self, row: dict[str, Any]) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(selected=row["selected"], refresh=False)
            self.bar.update(1)
        else:
            print(
                f"stage {row['stage']}/{self.total}: selected {row['selected']} of "
                f"{row['eligible']} ({row['seconds']:.2f} s)",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def format_summary(rows: list[dict[str, Any]]) -> str:
    """The stage summary as an aligned text table."""
    head = ("stage", "D(t)", "H(t)", "selected", "eligible", "bound", "value", "evals", "seconds")
    body = [
        (
            str(r["stage"]),
            f"{r['D']:.6g}",
            f"{r['H']:.6g}",
            str(r["selected"]),
            str(r["eligible"]),
            "yes" if r["bound"] else "no",
            f"{r['value']:.6g}",
            str(r["evaluations"]),
            f"{r['seconds']:.3f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(b[j]) for b in body)) for j, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def _write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=_SUMMARY_COLUMNS)
        w.writeheader()
        w.writerows({k: r[k] for k in _SUMMARY_COLUMNS} for r in rows)
    tmp.replace(path)


def _save_part(parts: Path, t: int, given: Any, dtype: Any) -> None:
    import numpy as np

    tmp = parts / f"stage_{t:05d}.tmp.npy"
    np.save(tmp, given.astype(dtype, copy=False))
    tmp.replace(parts / f"stage_{t:05d}.npy")


def _atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj), encoding="utf-8")
    tmp.replace(path)


# ----------------------------------------------------------------------------- command


def _run(args: argparse.Namespace) -> int:
    from kpod.schedule_io import output_format, read_schedule_input

    if args.output is None and not args.preview:
        raise ValueError("pass --output FILE (.parquet, .jsonl or .npz), or --preview")
    if args.preview and args.resume:
        raise ValueError("--resume continues a run that writes its output; drop --preview")
    if args.output is not None and not args.preview:
        output_format(args.output)  # fail on a bad suffix before the work
    t_start = time.perf_counter()
    inp = read_schedule_input(
        args.input,
        format=args.format,
        layout=args.layout,
        id_column=args.id_column,
        cluster_column=args.cluster_column,
        difficulty_column=args.difficulty_column,
        step_column=args.step_column,
    )
    return run_schedule(inp, args, read_seconds=time.perf_counter() - t_start)


def run_schedule(inp: Any, args: argparse.Namespace, *, read_seconds: float = 0.0) -> int:
    """Everything after reading: the stages, their state and parts, the output and summary.

    ``inp`` is a :class:`kpod.schedule_io.ScheduleInput`; ``args`` the parsed
    ``kpod schedule`` options (``benches/bench_schedule.py`` calls this to time
    the schedule apart from reading the input).
    """
    import numpy as np

    import kpod
    from kpod.schedule_io import given_dtype, write_given_steps

    t_start = time.perf_counter() - read_seconds
    output = Path(args.output) if args.output else None
    cur = kpod.Curriculum(
        inp.step_difficulty,
        inp.step_offsets,
        inp.clusters,
        stages=args.stages,
        p=args.p,
        c0=args.c0,
        beta=args.beta,
        delta_steps=args.delta_steps,
        eps=args.eps,
        algorithm=args.algorithm,
    )
    n_steps = int(inp.step_offsets[-1])
    print(
        f"{args.input}: {inp.n_questions} questions, {n_steps} steps, "
        f"{len(np.unique(inp.clusters))} clusters (one row per {inp.layout[:-1]}; "
        f"read in {read_seconds:.1f} s); B = {cur.total_difficulty:.6g}, H(0) = {cur.written:.6g}",
        file=sys.stderr,
    )
    dtype = given_dtype(int(np.diff(inp.step_offsets).max()))
    write = not args.preview
    summary_path = state_path = parts = None
    rows: list[dict[str, Any]] = []
    fingerprint = ""
    if write:
        assert output is not None
        summary_path, state_path, parts = _paths(output)
        fingerprint = _fingerprint(inp)
        if args.resume:
            rows = _resume(cur, state_path, parts, fingerprint)
            print(f"resuming after stage {cur.stage}", file=sys.stderr)
        else:
            if state_path.exists():
                print(
                    f"note: starting afresh; the saved state of an earlier run ({state_path}) "
                    "is replaced (pass --resume to continue it instead)",
                    file=sys.stderr,
                )
            if parts.exists():
                shutil.rmtree(parts)
            parts.mkdir(parents=True)
            _save_part(parts, 0, cur.given_steps, dtype)
    progress = _Progress(args.stages, cur.stage, enabled=not args.no_progress)
    try:
        while cur.stage < args.stages:
            t0 = time.perf_counter()
            stage = cur.advance()
            seconds = time.perf_counter() - t0
            given = stage.given_steps
            row: dict[str, Any] = {
                "stage": int(stage.stage),
                "D": float(stage.budget),
                "H": float(stage.written),
                "selected": len(stage.selected),
                "eligible": int(stage.eligible),
                "bound": bool(stage.bound),
                "value": float(stage.value),
                "evaluations": int(stage.evaluations),
                "seconds": round(seconds, 6),
            }
            rows.append(row)
            if write:
                assert parts is not None and state_path is not None
                _save_part(parts, row["stage"], given, dtype)
                _atomic_json(
                    state_path,
                    {
                        "format": _STATE_FORMAT,
                        "fingerprint": fingerprint,
                        "config": cur.config,
                        "stage": cur.stage,
                        "written": cur.written,
                        "total_difficulty": cur.total_difficulty,
                        "summary": rows,
                    },
                )
            del stage, given
            progress.update(row)
    except KeyboardInterrupt:
        progress.close()
        if write:
            print(
                f"kpod schedule: interrupted after stage {cur.stage}; rerun with --resume to "
                "continue",
                file=sys.stderr,
            )
        raise
    progress.close()
    print(format_summary(rows))
    if not write:
        return 0
    assert output is not None and summary_path is not None and parts is not None
    t0 = time.perf_counter()
    stage_files = [parts / f"stage_{t:05d}.npy" for t in range(args.stages + 1)]
    write_given_steps(
        output, inp.question_ids, stage_files, dtype=dtype, long=args.output_layout == "long"
    )
    _write_summary(summary_path, rows)
    shutil.rmtree(parts)
    assert state_path is not None
    state_path.unlink()
    print(
        f"wrote {output} ({args.output_layout}, stages 0..{args.stages}, "
        f"{time.perf_counter() - t0:.1f} s) and {summary_path}; "
        f"total {time.perf_counter() - t_start:.1f} s",
        file=sys.stderr,
    )
    return 0


def _resume(cur: Any, state_path: Path, parts: Path, fingerprint: str) -> list[dict[str, Any]]:
    import numpy as np

    if not state_path.is_file():
        raise ValueError(
            f"{state_path}: no saved state to resume (it is written while a run is under way "
            "and removed when it completes); run without --resume"
        )
    state = json.loads(state_path.read_text(encoding="utf-8"))
    if state.get("format") != _STATE_FORMAT:
        raise ValueError(f"{state_path}: not a kpod schedule state; run without --resume")
    if state["fingerprint"] != fingerprint:
        raise ValueError(
            f"{state_path}: saved for different input data (step difficulties, offsets or "
            "clusters differ); resume with the same input, or run without --resume"
        )
    if state["config"] != cur.config:
        changed = {
            k: (state["config"].get(k), v)
            for k, v in cur.config.items()
            if state["config"].get(k) != v
        }
        raise ValueError(
            f"{state_path}: saved with other options {changed} (saved, now); resume with the "
            "same options, or run without --resume"
        )
    stage = int(state["stage"])
    missing = [t for t in range(stage + 1) if not (parts / f"stage_{t:05d}.npy").is_file()]
    if missing:
        raise ValueError(
            f"{parts}: the given steps of stage(s) {missing} are missing; run without --resume"
        )
    sd = cur.state_dict()
    sd.update(
        stage=stage,
        given_steps=np.load(parts / f"stage_{stage:05d}.npy").astype(np.int64),
        written=float(state["written"]),
        total_difficulty=float(state["total_difficulty"]),
    )
    cur.load_state_dict(sd)
    rows: list[dict[str, Any]] = state["summary"]
    return rows
