#!/usr/bin/env bash
# The main job on a fresh machine: set-up, then `kpod run examples/demo.yaml`
# (SmolLM2-135M distilled on 200 bundled GSM8K problems; accuracy before and after).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/kpod run examples/demo.yaml "$@"
