#!/usr/bin/env bash
# The whole test gate, from a fresh checkout: set-up, Rust format/lint/tests,
# Python lint/types/stub check/tests, and the prebuilt-wheel smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH" PYO3_PYTHON="$PWD/.venv/bin/python"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1 TOKENIZERS_PARALLELISM=false

step() { printf '\n==> %s\n' "$*"; }
step "cargo fmt";    cargo fmt --all -- --check
step "cargo clippy"; cargo clippy --all-targets -q -- -D warnings
step "cargo clippy (python feature)"; cargo clippy --lib --features python -q -- -D warnings
step "cargo test";   cargo test -q
step "ruff";         ruff check python tests benches scripts && ruff format --check python tests benches scripts
step "mypy";         mypy
step "stubtest";     python -m mypy.stubtest kpod._kpod
step "pytest";       pytest -q -p no:cacheprovider "$@"
step "wheel";        bash scripts/wheel_smoke.sh
