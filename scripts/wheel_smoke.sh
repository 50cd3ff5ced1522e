#!/usr/bin/env bash
# The release artefacts, used as a user uses them:
#   1. the abi3 wheel for manylinux2014 (glibc >= 2.17: Ubuntu 18.04+, RHEL/Rocky 7+), linked
#      against old glibc symbols by zig (maturin build --zig), checked with auditwheel;
#   2. the sdist, built from source (pip runs maturin and cargo) in a second fresh environment.
# Each goes into a fresh virtual environment with nothing but kpod and numpy, and is run from
# outside the source tree (so the tree cannot shadow it): kpod --help/--version, the import
# check (no torch, yaml or pyarrow anywhere), a training command that must name its extra,
# kpod schedule on small files in two formats, and scripts/smoke.py; the wheel also runs a
# small kpod bench. Needs the dev extra (ziglang, auditwheel) and PyPI (numpy; maturin for
# the sdist build). Cost on a 2-core VM shared with other work (load 5-9): 3.3-5.5 min in
# all, of which the sdist's build from source is 70-170 s; it runs on every CI pass because a
# broken sdist (a file missing from it, a build-time dependency) is otherwise found only by a user.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export VIRTUAL_ENV="$repo/.venv" PATH="$repo/.venv/bin:$PATH"
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dist="$tmp/dist"
# Own target dir: zig's linker settings would otherwise invalidate maturin develop's build.
maturin build --release --zig --compatibility manylinux2014 --target-dir target/wheel -q -o "$dist"
maturin sdist -o "$dist" >/dev/null
wheel=$(ls "$dist"/kpod-*.whl)
sdist=$(ls "$dist"/kpod-*.tar.gz)
echo "built $(basename "$wheel") and $(basename "$sdist")"
report=$(auditwheel show "$wheel")
echo "$report"
grep -q '"manylinux_2_17_x86_64"' <<<"$report" || {
  echo "wheel_smoke: $wheel is not manylinux_2_17 (manylinux2014)" >&2
  exit 1
}

# A user's checks against the kpod installed in venv $1 ("full" adds kpod bench).
user_checks() {
  local venv=$1 mode=$2 t0=$SECONDS
  local py="$venv/bin/python" kpod="$venv/bin/kpod"
  cd "$tmp"
  "$kpod" --help | grep -Eq '^ +schedule ' || { echo "kpod --help lists no schedule" >&2; exit 1; }
  [ "$("$kpod" --version)" = "kpod $version" ] || { echo "kpod --version is not $version" >&2; exit 1; }
  # numpy only: the optional stack is not installed, and import kpod / kpod --help load none of it
  "$py" - <<'EOF'
import importlib.util
import sys

heavy = ("torch", "transformers", "datasets", "yaml", "pyarrow", "tqdm")
present = [m for m in heavy if importlib.util.find_spec(m) is not None]
assert not present, f"not a base install: {present} installed"
import kpod
import kpod.cli

assert "site-packages" in kpod.__file__, f"kpod imported from the source tree: {kpod.__file__}"
kpod.cli.build_parser()
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
assert not loaded, loaded
EOF
  # a training command names its extra instead of a traceback
  if "$kpod" run missing.yaml --set a=1 2>err.txt; then echo "kpod run succeeded?" >&2; exit 1; fi
  grep -q 'pip install "kpod\[train\]"' err.txt && ! grep -q Traceback err.txt || {
    cat err.txt >&2
    exit 1
  }
  # kpod schedule: the same questions one row per question (JSONL) and one row per step (CSV)
  "$py" - <<'EOF'
import csv, json
import numpy as np

rng = np.random.default_rng(0)
with open("q.jsonl", "w") as fq, open("s.csv", "w", newline="") as fs:
    w = csv.writer(fs)
    w.writerow(["question_id", "cluster", "step_difficulty"])
    for i in range(300):
        d, k = rng.random(int(rng.integers(1, 7))).round(4).tolist(), int(rng.integers(0, 8))
        fq.write(json.dumps({"question_id": i, "cluster": k, "step_difficulty": d}) + "\n")
        w.writerows([i, k, x] for x in d)
EOF
  "$kpod" schedule q.jsonl -o a.npz --stages 8
  "$kpod" schedule s.csv -o b.jsonl --stages 8 --output-layout long --no-progress >/dev/null
  "$py" - <<'EOF'
import json
import numpy as np

with np.load("a.npz") as z:
    wide = z["given_steps"]
long = [json.loads(x) for x in open("b.jsonl")]
assert wide.shape == (300, 9), wide.shape
assert [r["given_steps"] for r in long] == wide.T.reshape(-1).tolist(), "formats disagree"
assert (wide[:, 1:] <= wide[:, :-1]).all() and wide[:, -1].sum() < wide[:, 0].sum()
assert open("a.summary.csv").readline().startswith("stage,D,H,selected,eligible,bound")
print(f"kpod schedule OK: {int((wide[:, :-1] > wide[:, 1:]).sum())} moves over 8 stages")
EOF
  "$py" "$repo/scripts/smoke.py"
  if [ "$mode" = full ]; then
    "$kpod" bench --sizes 1e4,1e5 --curriculum 1e5 --stages 20 --repeats 1 --max-seconds 2 >bench.md
    grep -q greedy_max bench.md || { cat bench.md >&2; exit 1; }
    echo "kpod bench OK"
  fi
  echo "user checks ($mode) passed in $((SECONDS - t0)) s"
  cd "$repo"
}

python3 -m venv "$tmp/wheel"
"$tmp/wheel/bin/python" -m pip install -q "$wheel"
user_checks "$tmp/wheel" full

python3 -m venv "$tmp/sdist"
t0=$SECONDS
# From source in a fresh environment: pip fetches maturin and runs cargo on the sdist alone.
CARGO_TARGET_DIR="$repo/target/sdist" "$tmp/sdist/bin/python" -m pip install -q "$sdist"
echo "sdist built and installed in $((SECONDS - t0)) s"
user_checks "$tmp/sdist" short
