"""Toy prepared data for the training tests: tiny tokenizer, word problems with three steps.

Built with kpod.data.prepare_examples (the real contract), then given
deterministic token weights, clusters and (optionally) Eq. 8 difficulties.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def toy_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = np.random.default_rng(seed)
    names = ["Tom", "Anna", "Li", "Sara", "Omar", "Mia"]
    out = []
    for i in range(n):
        a, b, c = (int(x) for x in rng.integers(1, 50, 3))
        who = names[i % len(names)]
        steps = [f"{who} starts with {a} apples."]
        steps.append(f"{who} buys {b} more, so {a} + {b} = {a + b}.")
        if i % 3:
            steps.append(f"Then {c} more: {a + b} + {c} = {a + b + c}.")
            ans = a + b + c
            q = f"{who} has {a} apples, buys {b} and then {c} more. How many apples?"
        else:
            ans = a + b
            q = f"{who} has {a} apples and buys {b} more. How many apples?"
        out.append(
            {"id": f"toy-{i}", "question": q, "rationale": " ".join(steps), "answer": str(ans)}
        )
    return out


def toy_dataset(tokenizer: Any, n: int = 16, seed: int = 0, *, clusters: int = 3) -> Any:
    from kpod.data import prepare_examples

    ds = prepare_examples(toy_records(n, seed), tokenizer)

    def extra(ex: dict[str, Any], idx: int) -> dict[str, Any]:
        rng = np.random.default_rng(seed * 1000 + idx)
        w = [1.0 if s < 0 else float(rng.uniform(0.05, 0.95)) for s in ex["step_ids"]]
        return {"token_weights": w, "cluster": idx % clusters}

    return ds.map(extra, with_indices=True)


def with_difficulty(ds: Any, model: Any, **kw: Any) -> Any:
    from kpod.training import add_step_difficulty

    return add_step_difficulty(ds, model, batch_size=8, show_progress=False, **kw)
