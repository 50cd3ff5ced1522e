"""``generate_rationales``: questions in, teacher rationales out, resumable at corpus scale.

One request per (question, sample index); the output is append-only and keyed
by that pair (:mod:`kpod.teacher.store`), so a run started again with the same
command generates only what is missing. HTTP requests run concurrently (asyncio,
``concurrency`` at a time) under optional requests- and tokens-per-minute
limits, with retries on 429, 5xx, timeouts and connection errors (exponential
backoff with full jitter, honouring ``Retry-After``). The teacher's answer is
extracted and compared with the gold one on the way (:mod:`kpod.data.answers`).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kpod.teacher.backends import (
    Completion,
    OpenAIBackend,
    RequestFailed,
    RetryableError,
    TeacherError,
    TransformersBackend,
)
from kpod.teacher.prompt import PromptTemplate
from kpod.teacher.store import Key, RecordStore

__all__ = ["RetryPolicy", "Summary", "TeacherSettings", "generate_rationales", "read_questions"]

_GENERIC_FORMATS = ("jsonl", "json", "csv", "parquet")


@dataclass(frozen=True)
class TeacherSettings:
    """What the teacher is asked: every record stores these, and a restart must match them."""

    model: str
    prompt: PromptTemplate = field(default_factory=PromptTemplate)
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise TeacherError("no teacher model: pass --model (or set $KPOD_TEACHER_MODEL)")
        if self.temperature < 0:
            raise TeacherError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise TeacherError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise TeacherError(f"max_tokens must be >= 1, got {self.max_tokens}")

    def record(self, backend: str) -> dict[str, Any]:
        """The ``teacher`` field of every output record."""
        return {
            "backend": backend,
            "model": self.model,
            "prompt_style": self.prompt.style,
            "prompt_sha256": self.prompt.sha256(),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one request: ``base * 2**attempt`` seconds, capped, with full jitter."""

    max_retries: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        d = rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_delay))
        return d


@dataclass
class Summary:
    """What a run did; ``counts`` cover every planned sample, this run's and earlier ones."""

    out: str
    questions: int = 0
    planned: int = 0
    done_before: int = 0
    generated: int = 0
    failed: int = 0
    kept: int = 0
    rejected: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # agree/disagree/no_answer/empty/no_steps
    truncated: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    failed_examples: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def agreement(self) -> float:
        answered = sum(self.counts.values())
        return self.counts.get("agree", 0) / answered if answered else math.nan

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["agreement"] = None if math.isnan(self.agreement) else self.agreement
        return d

    def text(self) -> str:
        c = self.counts
        answered = sum(c.values())
        rate = self.generated / self.seconds if self.seconds > 0 else 0.0
        tok_rate = self.completion_tokens / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"kpod teacher: {self.planned} samples for {self.questions} questions -> {self.out}",
            f"  done before: {self.done_before}, generated now: {self.generated}, "
            f"failed: {self.failed}, missing: {self.planned - self.done_before - self.generated}",
            f"  kept: {self.kept}, rejected: {self.rejected} "
            f"(agree {c.get('agree', 0)}, disagree {c.get('disagree', 0)}, "
            f"no answer {c.get('no_answer', 0)}, empty {c.get('empty', 0)}, "
            f"no steps {c.get('no_steps', 0)}; truncated {self.truncated})",
            f"  teacher agreement with gold: {c.get('agree', 0)}/{answered}"
            + (f" ({100 * self.agreement:.1f}%)" if answered else ""),
            f"  tokens this run: prompt {self.prompt_tokens}, completion {self.completion_tokens}; "
            f"{self.seconds:.1f} s, {rate:.2f} samples/s, {tok_rate:.1f} completion tokens/s",
        ]
        if self.retries:
            lines.append(
                "  retries: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.retries.items()))
            )
        if self.failures:
            lines.append(
                "  failures (run the same command again to retry them): "
                + ", ".join(f"{k} x{v}" for k, v in sorted(self.failures.items()))
            )
        return "\n".join(lines)


def _sample_id(qid: str, sample: int) -> str:
    return qid if sample == 0 else f"{qid}-s{sample}"


def read_questions(
    path: str | Path,
    *,
    format: str = "auto",
    positional_ids: bool = False,
    limit: int | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Questions with ids and gold answers from any file ``kpod.data`` reads.

    A generic file (JSON Lines, JSON, CSV, Parquet) must give every question an
    id (the output is keyed by it): a record without one is an error unless
    ``positional_ids`` accepts ``<file stem>-<index>``. Dataset formats keep
    their own ids (GSM8K's are positional by design). Duplicate ids, missing
    questions or answers raise naming the file and line.
    """
    import itertools

    from kpod.data.loaders import detect_format, read_records

    fmt = detect_format(path) if format == "auto" else format
    stem = Path(path).stem if Path(path).is_file() else Path(path).name
    out = []
    records = read_records(path, format=fmt, require_rationale=False, **options)
    for i, rec in enumerate(itertools.islice(records, limit)):
        if fmt in _GENERIC_FORMATS and not positional_ids and rec["id"] == f"{stem}-{i}":
            raise TeacherError(
                f"{path}, record {i}: field 'id': missing (every question needs an id: the "
                "output is keyed by it; add one, map a column with --column id=NAME, or pass "
                f"--positional-ids to use '{stem}-<index>')"
            )
        out.append(rec)
    if not out:
        raise TeacherError(f"{path}: no questions")
    return out


class _Bucket:
    """A token bucket refilled at ``per_minute / 60`` per second, 10 seconds deep."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * 10)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, n: float) -> None:
        async with self.lock:
            need = min(n, self.capacity)
            while True:
                self._refill()
                if self.level >= need:
                    self.level -= n
                    return
                await asyncio.sleep((need - self.level) / self.rate)

    def give_back(self, n: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + n)


class _Run:
    def __init__(
        self,
        questions: list[dict[str, Any]],
        store: RecordStore,
        settings: TeacherSettings,
        backend_name: str,
        samples: int,
        keep_wrong: bool,
        tol: float,
        summary: Summary,
        scrub: Any = None,
    ):
        self.questions = {q["id"]: q for q in questions}
        self.store = store
        self.settings = settings
        self.teacher = settings.record(backend_name)
        self.keep_wrong = keep_wrong
        self.tol = tol
        self.summary = summary
        self.scrub = scrub or (lambda s: s)
        self.status: dict[Key, str] = {}
        self.kept = self.rejected = self.truncated = 0

    def result(self, key: Key, comp: Completion) -> tuple[bool, dict[str, Any]]:
        from kpod.data.answers import answers_match, extract_answer
        from kpod.data.steps import segment

        qid, sample = key
        q = self.questions[qid]
        text = comp.text.strip()
        truncated = comp.finish_reason == "length"
        pred = extract_answer(text, choices=q["choices"] or None) if text else None
        agrees = pred is not None and answers_match(pred, q["answer"], tol=self.tol)
        if not text:
            status = "empty"
        elif not segment(text).steps:
            status = "no_steps"
        elif pred is None:
            status = "no_answer"
        else:
            status = "agree" if agrees else "disagree"
        ok = status == "agree" and not truncated
        kept = ok or (self.keep_wrong and status in ("agree", "disagree", "no_answer"))
        rec = {
            "id": _sample_id(qid, sample),
            "question": q["question"],
            "rationale": text,
            "answer": q["answer"],
            "choices": q["choices"],
            "question_id": qid,
            "sample": sample,
            "teacher_answer": pred,
            "teacher_agrees": agrees,
            "teacher_status": status,
            "truncated": truncated,
            "finish_reason": comp.finish_reason,
            "teacher": self.teacher,
            "usage": {
                "prompt_tokens": comp.prompt_tokens,
                "completion_tokens": comp.completion_tokens,
            },
        }
        return kept, rec

    def record(self, results: list[tuple[Key, Completion]]) -> None:
        rows = [self.result(key, comp) for key, comp in results]
        self.store.append(rows)
        s = self.summary
        for (key, comp), (kept, rec) in zip(results, rows, strict=True):
            self.status[key] = rec["teacher_status"]
            self.kept += kept
            self.rejected += not kept
            self.truncated += rec["truncated"]
            s.generated += 1
            s.prompt_tokens += comp.prompt_tokens or 0
            s.completion_tokens += comp.completion_tokens or 0

    def fail(self, key: Key, reason: str) -> None:
        s = self.summary
        reason = self.scrub(reason)
        s.failed += 1
        s.failures[reason] = s.failures.get(reason, 0) + 1
        if len(s.failed_examples) < 20:
            s.failed_examples.append({"question_id": key[0], "sample": key[1], "reason": reason})


def _check_existing(
    store: RecordStore, questions: Mapping[str, Mapping[str, Any]], teacher: Mapping[str, Any]
) -> dict[Key, tuple[bool, str, bool]]:
    """``key -> (kept, status, truncated)`` of the stored records, checked against this run."""
    done: dict[Key, tuple[bool, str, bool]] = {}
    kept_file = str(store.path)
    for key, rec, where in store.existing():
        if key in done:
            continue  # never written by kpod; the first one counts
        old = rec.get("teacher") or {}
        diff = [k for k in teacher if k != "backend" and old.get(k) != teacher[k]]
        if diff:
            what = ", ".join(f"{k}={old.get(k)!r} (this run: {teacher[k]!r})" for k in diff)
            raise TeacherError(
                f"{where}: written with different settings: {what}; run with the same "
                "settings, another --out, or --force to start over"
            )
        q = questions.get(key[0])
        if q is not None and rec.get("question") != q["question"]:
            raise TeacherError(
                f"{where}: question id {key[0]!r} had the question {rec.get('question')!r}, "
                f"the input now has {q['question']!r} (the questions file changed?); "
                "use another --out or --force to start over"
            )
        done[key] = (
            where.startswith(kept_file + ","),
            str(rec.get("teacher_status", "?")),
            bool(rec.get("truncated")),
        )
    return done


def generate_rationales(
    questions: str | Path | Iterable[Mapping[str, Any]],
    out: str | Path,
    backend: OpenAIBackend | TransformersBackend,
    settings: TeacherSettings,
    *,
    samples: int = 1,
    keep_wrong: bool = False,
    force: bool = False,
    concurrency: int = 8,
    requests_per_minute: float | None = None,
    tokens_per_minute: float | None = None,
    retry: RetryPolicy | None = None,
    tol: float = 1e-6,
    show_progress: bool = True,
    check_model: bool = True,
    seed: int = 0,
) -> Summary:
    """Ask ``backend`` for ``samples`` rationales per question; append them to ``out``.

    Args:
        questions: a file ``kpod.data`` reads (see :func:`read_questions`) or
            records with ``id``, ``question``, ``answer`` (and ``choices``).
        out: the JSON Lines output of kept rationales (schema records plus
            ``question_id``, ``sample``, ``teacher_answer``, ``teacher_agrees``,
            ``teacher_status``, ``truncated``, ``finish_reason``, ``teacher``
            settings and ``usage`` tokens); ``<out>.rejected.jsonl`` gets the
            others and ``<out>.summary.json`` the :class:`Summary`.
        keep_wrong: keep rationales whose answer disagrees with the gold one (or
            has none, or was cut at ``max_tokens``) in ``out``, flagged
            ``teacher_agrees: false``. Empty outputs and outputs without a step
            are never kept (``kpod data prepare`` could not read them).
        force: move an output written with other settings (or for other
            questions) to ``<file>.bak`` and start over, instead of refusing.
        concurrency: HTTP requests in flight at once.
        requests_per_minute, tokens_per_minute: optional rate limits (tokens
            estimated as prompt characters / 4 + ``max_tokens`` before a request,
            corrected by the reported usage after it).
        retry: retries per request on 429, 5xx, timeouts and connection errors.
        check_model: ask the server which models it serves first.
        seed: the jitter's random seed.
    """
    from kpod.data.schema import validate_record

    if samples < 1:
        raise TeacherError(f"samples must be >= 1, got {samples}")
    if concurrency < 1:
        raise TeacherError(f"concurrency must be >= 1, got {concurrency}")
    retry = retry or RetryPolicy()
    if isinstance(questions, (str, Path)):
        qs = read_questions(questions)
    else:
        qs, seen = [], set()
        for i, raw in enumerate(questions):
            rec = validate_record(dict(raw), "questions", f"record {i}", require_rationale=False)
            if not rec["id"]:
                raise TeacherError(f"questions, record {i}: field 'id': missing")
            if rec["id"] in seen:
                raise TeacherError(f"questions, record {i}: field 'id': duplicate id {rec['id']!r}")
            seen.add(rec["id"])
            qs.append(rec)
    ids = {q["id"] for q in qs}
    for q in qs:
        for k in range(1, samples):
            if _sample_id(q["id"], k) in ids:
                raise TeacherError(
                    f"sample {k} of question {q['id']!r} would get the id "
                    f"{_sample_id(q['id'], k)!r}, which another question has; rename it"
                )
    if samples > 1 and settings.temperature == 0:
        print(
            "kpod teacher: warning: several samples at temperature 0 are (nearly) identical; "
            "pass --temperature, e.g. 0.7",
            file=sys.stderr,
        )

    store = RecordStore(out)
    store.acquire()
    try:
        teacher = settings.record(backend.name)
        by_id = {q["id"]: q for q in qs}
        try:
            done = _check_existing(store, by_id, teacher)
        except (TeacherError, ValueError):
            if not force:
                raise
            for p in store.paths():
                if p.exists():
                    shutil.move(str(p), str(p) + ".bak")
            done = {}
        plan = [(q["id"], k) for q in qs for k in range(samples)]
        summary = Summary(out=str(out), questions=len(qs), planned=len(plan))
        todo = [key for key in plan if key not in done]
        summary.done_before = len(plan) - len(todo)
        run = _Run(
            qs,
            store,
            settings,
            backend.name,
            samples,
            keep_wrong,
            tol,
            summary,
            scrub=getattr(backend, "scrub", None),
        )
        store.open()
        start = time.perf_counter()
        try:
            if todo:
                if isinstance(backend, OpenAIBackend):
                    asyncio.run(
                        _run_http(
                            run,
                            backend,
                            todo,
                            concurrency=concurrency,
                            rpm=requests_per_minute,
                            tpm=tokens_per_minute,
                            retry=retry,
                            show_progress=show_progress,
                            check_model=check_model,
                            seed=seed,
                        )
                    )
                else:
                    _run_local(run, backend, todo, show_progress=show_progress)
        finally:
            summary.seconds = time.perf_counter() - start
            planned = set(plan)
            statuses: Counter[str] = Counter()
            for key, (kept, status, truncated) in done.items():
                if key in planned:
                    statuses[status] += 1
                    summary.kept += kept
                    summary.rejected += not kept
                    summary.truncated += truncated
            summary.counts = dict(statuses)
            _count_new(run, summary)
            store.summary_path.write_text(
                json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8"
            )
    finally:
        store.close()
    return summary


def _count_new(run: _Run, summary: Summary) -> None:
    # this run's records, from what it wrote (run.status) and kept/rejected flags
    for status in run.status.values():
        summary.counts[status] = summary.counts.get(status, 0) + 1
    summary.kept += run.kept
    summary.rejected += run.rejected
    summary.truncated += run.truncated


def _progress(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="teacher", unit="sample", dynamic_ncols=True)


def _tick(bar: Any, n: int, summary: Summary) -> None:
    if bar is None:
        return
    bar.update(n)
    elapsed = max(bar.format_dict["elapsed"], 1e-9)
    bar.set_postfix(
        tok_s=f"{summary.completion_tokens / elapsed:.0f}", failed=summary.failed, refresh=False
    )


def _run_local(
    run: _Run, backend: TransformersBackend, todo: list[Key], *, show_progress: bool
) -> None:
    s = run.settings
    chunk = max(1, backend.batch_size) * 32  # bounded memory for prompts at corpus scale
    bar = _progress(len(todo), show_progress)
    try:
        for start in range(0, len(todo), chunk):
            keys = todo[start : start + chunk]
            requests = [
                s.prompt.request(run.questions[q]["question"], run.questions[q]["choices"])
                for q, _ in keys
            ]

            def done(indices: list[int], comps: list[Completion], keys: list[Key] = keys) -> None:
                run.record([(keys[i], c) for i, c in zip(indices, comps, strict=True)])
                _tick(bar, len(indices), run.summary)

            backend.generate(
                requests,
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=s.top_p,
                seed=None if s.seed is None else s.seed + start,
                on_batch=done,
                show_progress=False,
            )
    finally:
        if bar is not None:
            bar.close()


async def _run_http(
    run: _Run,
    backend: OpenAIBackend,
    todo: list[Key],
    *,
    concurrency: int,
    rpm: float | None,
    tpm: float | None,
    retry: RetryPolicy,
    show_progress: bool,
    check_model: bool,
    seed: int,
) -> None:
    s = run.settings
    rng = random.Random(seed)
    summary = run.summary
    await backend.start()
    try:
        if check_model:
            served = await _with_retries(backend.served_models, retry, rng, summary, backend)
            if served is not None and s.model not in served:
                shown = ", ".join(repr(m) for m in served[:10]) or "none"
                raise TeacherError(
                    f"{backend.base_url} does not serve the model {s.model!r} (it serves: {shown})"
                )
        req_bucket = _Bucket(rpm) if rpm else None
        tok_bucket = _Bucket(tpm) if tpm else None
        params: dict[str, Any] = {
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        bar = _progress(len(todo), show_progress)
        it = iter(todo)

        async def one(key: Key) -> None:
            qid, sample = key
            q = run.questions[qid]
            request = s.prompt.request(q["question"], q["choices"])
            p = dict(params)
            if s.seed is not None:
                p["seed"] = s.seed + sample
            estimate = len(json.dumps(request)) / 4 + s.max_tokens
            for attempt in range(retry.max_retries + 1):
                if req_bucket is not None:
                    await req_bucket.take(1)
                if tok_bucket is not None:
                    await tok_bucket.take(estimate)
                try:
                    comp = await backend.complete(s.model, request, p)
                except RetryableError as exc:
                    summary.retries[exc.reason] = summary.retries.get(exc.reason, 0) + 1
                    if attempt == retry.max_retries:
                        summary.retries[exc.reason] -= 1  # the last try is a failure, not a retry
                        if not summary.retries[exc.reason]:
                            del summary.retries[exc.reason]
                        run.fail(key, f"{exc.reason} after {attempt + 1} attempts")
                        return
                    await asyncio.sleep(retry.delay(attempt, exc.retry_after, rng))
                    continue
                except RequestFailed as exc:
                    run.fail(key, exc.reason)
                    return
                if tok_bucket is not None and comp.completion_tokens is not None:
                    used = (comp.prompt_tokens or 0) + comp.completion_tokens
                    tok_bucket.give_back(estimate - used)
                run.record([(key, comp)])
                return

        async def worker() -> None:
            for key in it:  # shared: each key goes to exactly one worker
                await one(key)
                _tick(bar, 1, summary)

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(todo)))]
        try:
            finished, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for t in finished:
                if t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            if bar is not None:
                bar.close()
    finally:
        await backend.aclose()


async def _with_retries(
    fn: Any, retry: RetryPolicy, rng: random.Random, summary: Summary, backend: OpenAIBackend
) -> Any:
    for attempt in range(retry.max_retries + 1):
        try:
            return await fn()
        except RetryableError as exc:
            if attempt == retry.max_retries:
                raise TeacherError(
                    f"cannot reach the teacher server at {backend.base_url} "
                    f"({exc.reason} after {attempt + 1} attempts)"
                ) from None
            summary.retries[exc.reason] = summary.retries.get(exc.reason, 0) + 1
            await asyncio.sleep(retry.delay(attempt, exc.retry_after, rng))
    raise AssertionError("unreachable")
