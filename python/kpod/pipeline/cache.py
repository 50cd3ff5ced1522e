"""The step cache of ``kpod run``: fingerprints, completion markers, resumption.

A step writes into ``<run_dir>/<step>/``. It is skipped when its marker
``.kpod-step.json`` holds the fingerprint of everything it depends on (the
caller hashes what that is: config sections, upstream fingerprints, file
digests, the kpod version). A step interrupted midway leaves no marker and is
redone; ``.kpod-started.json`` records the fingerprint it started with, so a
rerun with the same inputs keeps its partial work (training checkpoints, saved
generations) and a rerun with other inputs starts from an empty folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["StepCache", "file_digest", "fingerprint"]

MARKER = ".kpod-step.json"
STARTED = ".kpod-started.json"


def fingerprint(payload: Mapping[str, Any]) -> str:
    """16 hex digits of the SHA-256 of ``payload`` as sorted JSON (``str`` for other objects)."""
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _started_with(path: Path, fp: str) -> bool:
    """Whether the partial work in a step folder was started with these inputs."""
    try:
        return bool(json.loads(path.read_text(encoding="utf-8"))["fingerprint"] == fp)
    except (OSError, ValueError, KeyError):
        return False


class StepCache:
    """Cached steps under one run directory; ``force`` names steps to redo regardless."""

    def __init__(
        self, root: Path, *, force: Iterable[str] = (), log_prefix: str = "kpod run"
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.force = set(force)
        self.log_prefix = log_prefix
        self.fingerprints: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    def step_dir(self, step: str) -> Path:
        return self.root / step

    def marker(self, step: str) -> Path:
        return self.step_dir(step) / MARKER

    def is_done(self, step: str) -> bool:
        """Whether ``step`` finished with the fingerprint it has now (and is not forced)."""
        marker = self.marker(step)
        if step in self.force or not marker.is_file():
            return False
        try:
            saved = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        return bool(saved.get("fingerprint") == self.fingerprints[step])

    def run(self, step: str, fp: str, fn: Callable[[Path], None]) -> None:
        """Run ``fn(step_dir)`` unless ``step`` is done with fingerprint ``fp``; then mark it done."""
        self.fingerprints[step] = fp
        if self.is_done(step):
            saved = json.loads(self.marker(step).read_text(encoding="utf-8"))
            self.timings[step] = float(saved.get("seconds", 0.0))
            print(f"{self.log_prefix}: {step}: cached ({fp})", flush=True)
            return
        out = self.step_dir(step)
        started = out / STARTED
        # An earlier attempt with the same inputs stopped before its end: resume it.
        resumed = step not in self.force and _started_with(started, fp)
        if out.is_dir() and not resumed:
            # Leftovers of other inputs (checkpoints, partial generations) must not be resumed.
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        self.marker(step).unlink(missing_ok=True)
        started.write_text(json.dumps({"fingerprint": fp}) + "\n")
        print(f"{self.log_prefix}: {step} ...", flush=True)
        t0 = time.perf_counter()
        fn(out)
        seconds = time.perf_counter() - t0
        self.timings[step] = seconds
        # `seconds` is this attempt's; `resumed` says earlier, interrupted ones came first.
        marker = {"fingerprint": fp, "seconds": seconds, "resumed": resumed}
        self.marker(step).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        note = " (resumed: this attempt only)" if resumed else ""
        print(f"{self.log_prefix}: {step}: done in {seconds:.1f} s{note}", flush=True)
