"""`kpod teacher generate` against a loopback stub server (faults, resume, bad input) and the
local transformers backend. The end-to-end test with `transformers serve` is test_teacher_serve.py.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("openai")

from kpod.cli import main
from kpod.teacher import (
    OpenAIBackend,
    PromptTemplate,
    RetryPolicy,
    TeacherError,
    TeacherSettings,
    generate_rationales,
    read_jsonl,
)

FAST = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.05)
SECRET = "sk-test-not-a-real-key-8d1f"


class Stub:
    """A tiny OpenAI-compatible server on 127.0.0.1 that answers from the question text.

    A question "... (answer N)" gets "... Therefore, the answer is N."; ``faults``
    are (status, headers, message) answered first, one per request; a question
    containing a marker of ``always_fail`` always gets a 500.
    """

    def __init__(self, model: str = "stub-teacher"):
        self.model = model
        self.faults: deque[tuple[int, dict[str, str], str]] = deque()
        self.always_fail: set[str] = set()
        self.auth: list[str] = []
        self.posts = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.endswith("/models"):
                    data = [{"id": stub.model, "object": "model", "created": 0, "owned_by": "t"}]
                    self._send(200, {"object": "list", "data": data}, {})
                else:
                    self._send(404, {"error": {"message": "no route"}}, {})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with stub.lock:
                    stub.posts += 1
                    stub.auth.append(self.headers.get("authorization", ""))
                    fault = stub.faults.popleft() if stub.faults else None
                text = body.get("prompt") or json.dumps(body.get("messages"))
                if fault is None and any(m in text for m in stub.always_fail):
                    fault = (500, {}, "boom")
                if fault is not None:
                    status, headers, message = fault
                    self._send(status, {"error": {"message": message, "type": "x"}}, headers)
                    return
                m = re.search(r"\(answer (\S+?)\)", text)
                answer = m.group(1) if m else "0"
                reply = f"We read the question.\nThe total is {answer}.\nTherefore, the answer is {answer}."
                usage = {"prompt_tokens": 7, "completion_tokens": 11, "total_tokens": 18}
                if "messages" in body:
                    choice = {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                    obj = "chat.completion"
                else:
                    choice = {"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}
                    obj = "text_completion"
                self._send(
                    200,
                    {
                        "id": "x",
                        "object": obj,
                        "created": 0,
                        "model": body["model"],
                        "choices": [choice],
                        "usage": usage,
                    },
                    {},
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.close()


def write_questions(path: Path, n: int = 6, wrong: tuple[int, ...] = ()) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            gold = str(100 + i) if i in wrong else str(i + 2)
            q = {
                "id": f"q{i}",
                "question": f"Tom has {i} apples and 2 more (answer {i + 2})",
                "answer": gold,
            }
            fh.write(json.dumps(q) + "\n")
    return path


def keys(path: Path) -> list[tuple[str, int]]:
    return [(r["question_id"], r["sample"]) for _, r in read_jsonl(path)]


def settings(model: str = "stub-teacher", **kw: Any) -> TeacherSettings:
    return TeacherSettings(model=model, max_tokens=64, **kw)


def test_generates_kept_and_rejected_records_readable_by_kpod_data(stub, tmp_path, monkeypatch):
    from kpod.data import prepare_examples, read_records
    from kpod.testing import tiny_tokenizer

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    qs = write_questions(tmp_path / "q.jsonl", 6, wrong=(1, 4))
    out = tmp_path / "r.jsonl"
    s = generate_rationales(
        qs, out, OpenAIBackend(stub.url), settings(), samples=2, retry=FAST, show_progress=False
    )
    assert (s.planned, s.generated, s.failed, s.kept, s.rejected) == (12, 12, 0, 8, 4)
    assert s.counts == {"agree": 8, "disagree": 4} and s.agreement == pytest.approx(8 / 12)
    assert (s.prompt_tokens, s.completion_tokens) == (12 * 7, 12 * 11)
    recs = [r for _, r in read_jsonl(out)]
    assert sorted(r["id"] for r in recs) == sorted(
        [f"q{i}" for i in (0, 2, 3, 5)] + [f"q{i}-s1" for i in (0, 2, 3, 5)]
    )
    r = recs[0]
    assert r["teacher_agrees"] and r["teacher_answer"] == r["answer"]
    assert r["teacher"]["model"] == "stub-teacher" and r["teacher"]["temperature"] == 0.0
    assert r["usage"] == {"prompt_tokens": 7, "completion_tokens": 11}
    assert sorted(keys(out.with_name("r.jsonl.rejected.jsonl"))) == [
        ("q1", 0),
        ("q1", 1),
        ("q4", 0),
        ("q4", 1),
    ]
    # kpod data reads the output as it is; prepare tokenizes it (steps found, answer stripped)
    loaded = list(read_records(out))
    assert len(loaded) == 8 and loaded[0]["rationale"].startswith("We read the question.")
    ds = prepare_examples(loaded, tiny_tokenizer(), kind="causal")
    assert len(ds) == 8 and set(ds["n_steps"]) == {2}
    tok_dir = tmp_path / "tok"
    tiny_tokenizer().save_pretrained(tok_dir)
    prep = ["data", "prepare", str(out), "--tokenizer", str(tok_dir), "--filter", "drop"]
    assert main([*prep, "--out", str(tmp_path / "prepared")]) == 0  # as `kpod run` does
    # the key was sent to the server and written nowhere
    assert stub.auth[0] == f"Bearer {SECRET}"
    for p in tmp_path.glob("r.jsonl*"):
        assert SECRET not in p.read_text()
    # the same command again: nothing to do
    again = generate_rationales(
        qs, out, OpenAIBackend(stub.url), settings(), samples=2, retry=FAST, show_progress=False
    )
    assert (again.done_before, again.generated, again.kept) == (12, 0, 8) and stub.posts == 12
    # keep-wrong needs another file (the rejected ones are done) and flags them
    out2 = tmp_path / "kw.jsonl"
    generate_rationales(
        qs,
        out2,
        OpenAIBackend(stub.url),
        settings(),
        keep_wrong=True,
        retry=FAST,
        show_progress=False,
    )
    flags = {r["id"]: r["teacher_agrees"] for _, r in read_jsonl(out2)}
    assert flags == {f"q{i}": i not in (1, 4) for i in range(6)}


def test_retries_429_and_500_then_reports_failures_and_resumes(stub, tmp_path, capsys):
    qs = write_questions(tmp_path / "q.jsonl", 5)
    out = tmp_path / "r.jsonl"
    stub.faults.extend(
        [(429, {"retry-after": "0"}, "slow down")] * 3 + [(500, {}, "oops"), (503, {}, "busy")]
    )
    stub.always_fail.add("Tom has 3 apples")
    argv = ["teacher", "generate", str(qs), "--out", str(out), "--base-url", stub.url]
    argv += ["--model", "stub-teacher", "--max-retries", "3", "--retry-delay", "0.01"]
    argv += ["--concurrency", "2", "--no-progress"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "1 sample(s) failed; run the same command again" in captured.err
    summary = json.loads(out.with_name("r.jsonl.summary.json").read_text())
    assert summary["failures"] == {"500 server error after 4 attempts": 1}
    assert summary["failed_examples"] == [
        {"question_id": "q3", "sample": 0, "reason": "500 server error after 4 attempts"}
    ]
    assert summary["retries"]["429 rate limited"] == 3
    assert summary["retries"]["500 server error"] >= 1 + 3  # the fault and q3's three retries
    assert summary["retries"]["503 server error"] == 1
    assert "429 rate limited x3" in captured.out
    assert sorted(keys(out)) == [("q0", 0), ("q1", 0), ("q2", 0), ("q4", 0)]
    # the server heals; the same command generates only the missing sample
    stub.always_fail.clear()
    posts = stub.posts
    assert main(argv) == 0
    assert stub.posts == posts + 1
    assert sorted(keys(out)) == [(f"q{i}", 0) for i in range(5)]
    summary = json.loads(out.with_name("r.jsonl.summary.json").read_text())
    assert (summary["done_before"], summary["generated"], summary["failures"]) == (4, 1, {})


def test_request_errors_are_not_retried_and_never_show_the_key(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", SECRET)
    qs = write_questions(tmp_path / "q.jsonl", 2)
    stub.faults.append((400, {}, f"prompt too long for key {SECRET}"))
    out = tmp_path / "r.jsonl"
    s = generate_rationales(
        qs,
        out,
        OpenAIBackend(stub.url, api_key_env="MY_KEY"),
        settings(),
        concurrency=1,
        retry=FAST,
        show_progress=False,
    )
    assert s.failures == {"400: prompt too long for key ***": 1} and s.retries == {}
    assert SECRET not in s.text() and SECRET not in json.dumps(s.to_dict())
    for p in tmp_path.iterdir():
        assert SECRET not in p.read_text()


def test_unreachable_server_and_unknown_model(stub, tmp_path):
    import socket

    qs = write_questions(tmp_path / "q.jsonl", 2)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(
        TeacherError,
        match=rf"cannot reach the teacher server at {url} \(connection error after 3 attempts\)",
    ):
        generate_rationales(
            qs,
            tmp_path / "a.jsonl",
            OpenAIBackend(url, timeout=2),
            settings(),
            retry=RetryPolicy(max_retries=2, base_delay=0.01),
            show_progress=False,
        )
    with pytest.raises(
        TeacherError, match="does not serve the model 'gpt-nope' \\(it serves: 'stub-teacher'\\)"
    ):
        generate_rationales(
            qs,
            tmp_path / "b.jsonl",
            OpenAIBackend(stub.url),
            settings("gpt-nope"),
            show_progress=False,
        )
    assert stub.posts == 0


def test_other_settings_refused_unless_force(stub, tmp_path, capsys):
    qs = write_questions(tmp_path / "q.jsonl", 3)
    out = tmp_path / "r.jsonl"
    base = ["teacher", "generate", str(qs), "--out", str(out), "--base-url", stub.url]
    base += ["--model", "stub-teacher", "--no-progress"]
    assert main(base) == 0
    assert main([*base, "--temperature", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "written with different settings: temperature=0.0 (this run: 0.5)" in err
    assert main([*base, "--prompt-style", "completion"]) == 1
    assert "prompt_style='chat' (this run: 'completion')" in capsys.readouterr().err
    assert main([*base, "--temperature", "0.5", "--force"]) == 0
    assert (tmp_path / "r.jsonl.bak").is_file()
    assert {r["teacher"]["temperature"] for _, r in read_jsonl(out)} == {0.5}
    assert len(keys(out)) == 3


def test_truncated_last_line_is_cut_and_regenerated(stub, tmp_path):
    qs = write_questions(tmp_path / "q.jsonl", 4)
    out = tmp_path / "r.jsonl"
    b = OpenAIBackend(stub.url)
    generate_rationales(qs, out, b, settings(), show_progress=False)
    lines = out.read_text().splitlines(keepends=True)
    by_id = {json.loads(line)["id"]: line for line in lines}
    # as if killed while writing q2: q0 and q1 complete, q2 half written, q3 missing
    out.write_text(by_id["q0"] + by_id["q1"] + by_id["q2"][:40])
    s = generate_rationales(qs, out, OpenAIBackend(stub.url), settings(), show_progress=False)
    assert (s.done_before, s.generated) == (2, 2)
    assert sorted(keys(out)) == [(f"q{i}", 0) for i in range(4)]  # each exactly once


def test_completion_style_and_template(stub, tmp_path):
    qs = write_questions(tmp_path / "q.jsonl", 2)
    out = tmp_path / "r.jsonl"
    st = settings(prompt=PromptTemplate(style="completion"))
    s = generate_rationales(qs, out, OpenAIBackend(stub.url), st)  # with a progress bar
    assert s.kept == 2
    p = PromptTemplate()
    assert p.render("What is 2+3?", ["4", "5"]) == (
        "Q: What is 2+3?\nAnswer Choices: (A) 4 (B) 5\nA: Let's think step by step."
    )
    from kpod.data.template import prompt

    assert PromptTemplate(style="completion").render(" Why? ") == prompt("Why?")
    with pytest.raises(ValueError, match="no \\{question\\} placeholder"):
        PromptTemplate(template="Q: {q}")


def test_bad_questions(stub, tmp_path, capsys):
    base = [
        "teacher",
        "generate",
        "--base-url",
        stub.url,
        "--model",
        "stub-teacher",
        "--no-progress",
    ]
    noid = tmp_path / "noid.jsonl"
    noid.write_text('{"question": "1+1? (answer 2)", "answer": "2"}\n')
    assert main([*base, str(noid), "--out", str(tmp_path / "a.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "noid.jsonl, record 0: field 'id': missing" in err and "--positional-ids" in err
    assert main([*base, str(noid), "--out", str(tmp_path / "a.jsonl"), "--positional-ids"]) == 0
    assert keys(tmp_path / "a.jsonl") == [("noid-0", 0)]
    dup = tmp_path / "dup.jsonl"
    dup.write_text(
        '{"id": "x", "question": "a (answer 1)", "answer": "1"}\n'
        '{"id": "x", "question": "b (answer 1)", "answer": "1"}\n'
    )
    assert main([*base, str(dup), "--out", str(tmp_path / "b.jsonl")]) == 1
    assert (
        "dup.jsonl, line 2, field 'id': duplicate id 'x' (first at line 1)"
        in capsys.readouterr().err
    )
    noq = tmp_path / "noq.jsonl"
    noq.write_text('{"id": "x", "answer": "1"}\n')
    assert main([*base, str(noq), "--out", str(tmp_path / "c.jsonl")]) == 1
    assert "noq.jsonl, line 1, field 'question': missing" in capsys.readouterr().err
    # a question file that changed under the same ids is refused
    qs = write_questions(tmp_path / "q.jsonl", 2)
    assert main([*base, str(qs), "--out", str(tmp_path / "d.jsonl")]) == 0
    qs.write_text(qs.read_text().replace("Tom has 1", "Ann has 1"))
    assert main([*base, str(qs), "--out", str(tmp_path / "d.jsonl")]) == 1
    assert "question id 'q1' had the question" in capsys.readouterr().err
    assert stub.posts == 3


def test_token_bucket_waits_for_its_rate():
    import asyncio
    import time

    from kpod.teacher.run import _Bucket

    async def go() -> float:
        b = _Bucket(per_minute=6000)  # 100 per second, 1000 deep
        await b.take(1000)
        t = time.perf_counter()
        await b.take(30)
        return time.perf_counter() - t

    assert 0.2 < asyncio.run(go()) < 1.5


def test_local_transformers_backend_shares_kpod_eval_generation(tmp_path):
    from kpod.evaluation import generate_answers
    from kpod.teacher import TransformersBackend
    from kpod.testing import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok)
    qs = [
        {"id": f"q{i}", "question": f"Tom has {i} apples. How many?", "answer": str(i)}
        for i in range(5)
    ]
    out = tmp_path / "r.jsonl"
    backend = TransformersBackend(model, tok, batch_size=2)
    st = TeacherSettings(model="tiny", prompt=PromptTemplate(style="completion"), max_tokens=8)
    s = generate_rationales(qs, out, backend, st, keep_wrong=True)
    assert s.generated == 5 and s.completion_tokens > 0 and s.prompt_tokens > 0
    recs = {
        r["id"]: r for p in (out, tmp_path / "r.jsonl.rejected.jsonl") for _, r in read_jsonl(p)
    }
    assert sorted(recs) == [f"q{i}" for i in range(5)]
    # the default completion prompt is the student's: the same greedy text as kpod eval's
    texts = generate_answers(
        model, tok, [q["question"] for q in qs], max_new_tokens=8, show_progress=False
    )
    assert [recs[q["id"]]["rationale"] for q in qs] == [t.strip() for t in texts]
    assert all(r["teacher"]["backend"] == "transformers" for r in recs.values())


def test_command_imports_nothing_heavy_and_names_the_extra(tmp_path, monkeypatch, capsys):
    import subprocess
    import sys

    code = (
        "import sys, kpod.cli; kpod.cli.build_parser(); "
        "heavy = [m for m in ('openai', 'torch', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    monkeypatch.setitem(sys.modules, "openai", None)  # as if the extra were not installed
    qs = write_questions(tmp_path / "q.jsonl", 1)
    argv = ["teacher", "generate", str(qs), "--out", str(tmp_path / "r.jsonl"), "--model", "m"]
    assert main(argv) == 1
    assert "needs the 'openai' package: pip install \"kpod[teacher]\"" in capsys.readouterr().err


def test_auth_and_not_found_stop_the_run(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    qs = write_questions(tmp_path / "q.jsonl", 3)
    stub.faults.append((401, {}, f"invalid key {SECRET}"))
    with pytest.raises(TeacherError) as err:
        generate_rationales(
            qs,
            tmp_path / "a.jsonl",
            OpenAIBackend(stub.url),
            settings(),
            concurrency=1,
            show_progress=False,
        )
    assert (
        "refused the request (401: invalid key ***); is the API key in $OPENAI_API_KEY right?"
        in str(err.value)
    )
    assert SECRET not in str(err.value)
    stub.faults.append((404, {}, "no such route"))
    with pytest.raises(TeacherError, match="answered 404 for model 'stub-teacher': no such route"):
        generate_rationales(
            qs,
            tmp_path / "b.jsonl",
            OpenAIBackend(stub.url),
            settings(),
            concurrency=1,
            show_progress=False,
        )
    summary = json.loads((tmp_path / "b.jsonl.summary.json").read_text())
    assert summary["generated"] == 0 and summary["failed"] == 0


def test_local_backend_samples_with_temperature(tmp_path):
    from kpod.teacher import TransformersBackend
    from kpod.testing import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    qs = [{"id": f"q{i}", "question": f"Tom has {i} apples.", "answer": str(i)} for i in range(2)]
    backend = TransformersBackend(tiny_causal_lm(tok), tok, batch_size=4)
    st = TeacherSettings(
        model="tiny",
        prompt=PromptTemplate(style="completion"),
        max_tokens=6,
        temperature=0.9,
        seed=3,
    )
    out = tmp_path / "r.jsonl"
    s = generate_rationales(qs, out, backend, st, samples=3, keep_wrong=True, show_progress=False)
    recs = [r for p in (out, tmp_path / "r.jsonl.rejected.jsonl") for _, r in read_jsonl(p)]
    assert s.generated == 6 and sorted(r["id"] for r in recs) == [
        "q0",
        "q0-s1",
        "q0-s2",
        "q1",
        "q1-s1",
        "q1-s2",
    ]
    assert len({r["rationale"] for r in recs}) > 2  # sampled, not six copies of two greedy texts
    assert all(r["teacher"]["temperature"] == 0.9 and r["teacher"]["seed"] == 3 for r in recs)
