"""Append-only JSON Lines output keyed by (question id, sample index).

Two files: ``OUT`` holds the kept rationales (records ``kpod data prepare`` and
``kpod run`` read as they are), ``OUT.rejected.jsonl`` the generations that were
answered but not kept (wrong answer without ``--keep-wrong``, empty output, no
steps), so that a restart does not ask the teacher again for them. Every record
is one line; lines are flushed and fsynced after every record or batch. A run
killed mid-write leaves at most one incomplete last line: it is cut off when the
file is opened again (the record it held is generated again), so the files never
hold a duplicate or a broken record. A lock file keeps two runs from writing the
same output at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["Key", "RecordStore", "read_jsonl"]

Key = tuple[str, int]


def read_jsonl(path: Path, *, repair: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of every complete line of ``path``.

    An incomplete last line (no newline: the writer was killed) is skipped, and
    with ``repair`` cut off the file. Any other bad line raises ``ValueError``
    naming the line: kpod never writes one.
    """
    if not path.is_file():
        return
    offset = 0
    cut = None
    with path.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.endswith(b"\n"):  # the last line, cut by a kill
                cut = offset
                break
            offset += len(line)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(
                    f"{path}, line {n}: not a JSON record ({exc}); was it edited?"
                ) from exc
            if not isinstance(obj, dict):
                raise ValueError(f"{path}, line {n}: expected a JSON object")
            yield n, obj
    if cut is not None and repair:
        with path.open("r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())


def record_key(obj: dict[str, Any], where: str) -> Key:
    qid, sample = obj.get("question_id"), obj.get("sample")
    if not isinstance(qid, str) or not isinstance(sample, int):
        raise ValueError(
            f"{where}: no 'question_id'/'sample' fields; not a kpod teacher output file "
            "(choose another --out, or --force to start over)"
        )
    return qid, sample


class RecordStore:
    """The kept and rejected files of one output, opened for appending."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rejected_path = self.path.with_name(self.path.name + ".rejected.jsonl")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._files: dict[bool, IO[str]] = {}
        self._lock: IO[str] | None = None

    @property
    def summary_path(self) -> Path:
        return self.path.with_name(self.path.name + ".summary.json")

    def paths(self) -> list[Path]:
        return [self.path, self.rejected_path, self.summary_path]

    def existing(self) -> Iterator[tuple[Key, dict[str, Any], str]]:
        """``(key, record, location)`` of every stored record, kept file first."""
        for path in (self.path, self.rejected_path):
            for n, obj in read_jsonl(path, repair=self._lock is not None):
                where = f"{path}, line {n}"
                yield record_key(obj, where), obj, where

    def acquire(self) -> None:
        """Take the output's lock (raises if another run holds it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.lock_path.open("a+", encoding="utf-8")
        try:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - no fcntl (Windows): no lock
            pass
        except OSError:
            fh.close()
            raise ValueError(
                f"{self.path}: another kpod teacher run is writing this output "
                f"(lock {self.lock_path})"
            ) from None
        self._lock = fh

    def open(self) -> None:
        for kept, path in ((True, self.path), (False, self.rejected_path)):
            self._files[kept] = path.open("a", encoding="utf-8")

    def append(self, records: list[tuple[bool, dict[str, Any]]]) -> None:
        """Write ``(kept, record)`` pairs, then flush and fsync the touched files."""
        touched = set()
        for kept, rec in records:
            self._files[kept].write(json.dumps(rec, ensure_ascii=False) + "\n")
            touched.add(kept)
        for kept in touched:
            fh = self._files[kept]
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
        if self._lock is not None:
            # The lock file stays: unlinking it would let a waiting run lock a
            # file no later run can see.
            self._lock.close()
            self._lock = None
