#!/usr/bin/env bash
# Builds the abi3 manylinux wheel the way a release does, installs it into a fresh
# virtual environment (numpy only: no torch), and runs the smoke test there. Proves
# that `pip install kpod-*.whl` works without the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
rm -rf dist
maturin build --release -q -o dist
wheel=$(ls dist/kpod-*.whl)
echo "built $wheel"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q "$wheel"
# Run from outside the repo so the source tree cannot shadow the installed wheel.
(cd "$tmp" && "$tmp/venv/bin/python" "$OLDPWD/scripts/smoke.py")
