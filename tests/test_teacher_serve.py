"""End to end: `kpod teacher generate` against a real `transformers serve` on 127.0.0.1.

A tiny random Llama (built from a config, with a tokenizer trained on the fly) is
saved to a temporary folder and served offline; it echoes the last word of its
prompt, so a question ending "The answer is N" gets "N N N ...". The run is
killed with SIGKILL mid-way, a half-written line is added as a kill during a
write would leave it, and the same command then completes the file: every
(question, sample) exactly once, readable by kpod.data.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

N = 30


def _serve_cmd() -> list[str] | None:
    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError:  # a transformers without `transformers serve`
        return None
    exe = Path(sys.executable).with_name("transformers")
    if not exe.is_file() or not is_serve_available():
        return None
    return [str(exe), "serve"]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, str]]:
    cmd = _serve_cmd()
    if cmd is None:
        pytest.skip("`transformers serve` is not available (pip install 'transformers[serving]')")
    from kpod.testing import tiny_causal_lm, tiny_tokenizer

    folder = tmp_path_factory.mktemp("teacher-model")
    tok = tiny_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tiny_causal_lm(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = (folder / "serve.log").open("w")
    proc = subprocess.Popen(
        [*cmd, str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        f"transformers serve did not start:\n{(folder / 'serve.log').read_text()[-3000:]}"
                    )
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1", str(folder)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _keys(path: Path) -> list[tuple[str, int]]:
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            out.append((r["question_id"], r["sample"]))
    return out


@pytest.mark.slow
def test_transformers_serve_kill_and_resume(server, tmp_path):
    from kpod.data import read_records

    url, model = server
    qs = tmp_path / "questions.jsonl"
    with qs.open("w") as fh:
        for i in range(N):
            gold = 10 + i if i % 3 else 999  # every third teacher answer disagrees
            q = {
                "id": f"q{i}",
                "question": f"Tom has apples. The answer is {10 + i}",
                "answer": gold,
            }
            fh.write(json.dumps(q) + "\n")
    out = tmp_path / "rationales.jsonl"
    cmd = [sys.executable, "-m", "kpod", "teacher", "generate", str(qs), "--out", str(out)]
    cmd += ["--base-url", url, "--model", model, "--max-tokens", "6", "--system", ""]
    cmd += ["--template", "{question}", "--keep-wrong", "--concurrency", "2", "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "sk-e2e-secret-not-real"}
    # 60 requests per minute after a 10-request burst: the run is still going when killed
    proc = subprocess.Popen(
        [*cmd, "--rpm", "60"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while len(_keys(out)) < 4:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no records within 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(_keys(out))
    assert 4 <= before < N
    # a kill during a write leaves a half line; the resumed run cuts it off
    with out.open("a") as fh:
        fh.write('{"id": "q2", "question": "Tom has ap')
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"done before: {before}, generated now: {N - before}, failed: 0" in done.stdout
    keys = _keys(out)  # every line is whole JSON, each (question, sample) exactly once
    assert sorted(keys) == sorted((f"q{i}", 0) for i in range(N))
    assert len(list(read_records(out))) == N  # kpod data reads it as it is
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    # the model echoes "10 + i": every third question's gold answer (999) disagrees
    agree = sorted(
        (r["id"] for r in recs.values() if r["teacher_agrees"]), key=lambda x: int(x[1:])
    )
    assert agree == [f"q{i}" for i in range(N) if i % 3], [r["rationale"] for r in recs.values()]
    assert f"teacher agreement with gold: {len(agree)}/30 (66.7%)" in done.stdout
    assert recs["q3"]["teacher_answer"] == "13" and recs["q3"]["teacher_agrees"] is False
    assert recs["q4"]["teacher"]["model"] == model and recs["q4"]["usage"]["completion_tokens"] == 6
    assert "sk-e2e-secret" not in out.read_text() + done.stdout + done.stderr
    # nothing left to do
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and f"done before: {N}, generated now: 0" in again.stdout
    # a model the server does not serve
    bad = subprocess.run(
        [*cmd[:-1], "--no-progress", "--model", "gpt-nope", "--out", str(tmp_path / "x.jsonl")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert f"{url} does not serve the model 'gpt-nope' (it serves: '{model}')" in bad.stderr
