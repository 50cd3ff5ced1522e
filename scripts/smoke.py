"""Smoke test of an installed kpod wheel: import, one selection, one curriculum stage."""

from __future__ import annotations

import numpy as np

import kpod

assert "site-packages" in kpod.__file__, f"kpod imported from the source tree: {kpod.__file__}"
rng = np.random.default_rng(0)
costs = rng.random(1000)
clusters = rng.integers(0, 5, size=1000)
sel = kpod.select(costs, clusters, budget=10.0)
assert sel.cost <= 10.0 + 1e-9 and len(sel.indices) > 0, sel
n_steps = rng.integers(1, 6, size=200)
offsets = np.concatenate([[0], np.cumsum(n_steps)]).astype(np.int64)
cur = kpod.Curriculum(rng.random(int(offsets[-1])), offsets, rng.integers(0, 5, size=200), stages=5)
stage = cur.advance()
print(
    f"kpod {kpod.__version__} wheel OK: select picked {len(sel.indices)} items; stage 1 advanced {len(stage.selected)} questions"
)
