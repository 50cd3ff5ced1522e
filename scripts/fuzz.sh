#!/usr/bin/env bash
# Fuzz the Rust entry points (kpod::select, kpod::Curriculum) with libFuzzer via cargo-fuzz.
# Not part of the test gate: run it when the core changes. SECONDS_PER_TARGET defaults to 60.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain build them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in select curriculum; do
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" -- -max_total_time="${SECONDS_PER_TARGET:-60}" -max_len=4096
done
