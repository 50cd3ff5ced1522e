"""Per-token weights for a prepared dataset: the ``token_weights`` column.

``token_weights`` is aligned with ``input_ids``: the sigmoid weight w_j for
every rationale token and ``1.0`` for prompt and answer tokens
(docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from kpod.weighting.module import PAD, KeypointWeighting, check_example

COLUMN = "token_weights"


def _name(row: dict[str, Any], index: int) -> str:
    return repr(row["id"]) if row.get("id") is not None else f"#{index}"


def check_dataset_tokenizer(
    dataset: Any, module: KeypointWeighting, tokenizer: Any = None, n_check: int = 8
) -> None:
    """Raise if the dataset was not tokenized with the module's tokenizer.

    With ``tokenizer`` (the one that prepared the dataset) its fingerprint must
    equal the module's. Independently, every id must be inside the module's
    vocabulary, and for the first ``n_check`` examples decoding step 0's tokens
    with ``tokenizer`` must give step 0's text.
    """
    if tokenizer is not None:
        module.check_tokenizer(tokenizer)
    vocab = module.module_config.vocab_size
    for i, row in enumerate(
        dataset.select_columns([c for c in ("id", "input_ids") if c in dataset.column_names])
    ):
        top = max(row["input_ids"], default=0)
        if top >= vocab:
            raise ValueError(
                f"example {_name(row, i)}: token id {top} is outside the weighting module's "
                f"vocabulary of {vocab} (student {module.module_config.student!r}); the dataset was "
                "prepared with a different tokenizer"
            )
    if tokenizer is None or "steps" not in dataset.column_names:
        return
    for i in range(min(n_check, len(dataset))):
        row = dataset[i]
        ids = [t for t, s in zip(row["input_ids"], row["step_ids"], strict=True) if s == 0]
        text = tokenizer.decode(ids, skip_special_tokens=False)
        if row["steps"] and " ".join(text.split()) != " ".join(row["steps"][0].split()):
            raise ValueError(
                f"example {_name(row, i)}: decoding its step-0 tokens with the module's tokenizer "
                f"gives {text[:60]!r}, not the step text {row['steps'][0][:60]!r}; the dataset was "
                "prepared with a different tokenizer (re-run `kpod data prepare` with the student "
                "the module was trained for)"
            )


def weights_for(
    module: KeypointWeighting, rows: Sequence[dict[str, Any]], names: Sequence[str]
) -> list[list[float]]:
    """Token weights for a batch of prepared rows (lists, unpadded)."""
    for row, name in zip(rows, names, strict=True):
        if len(row["input_ids"]) != len(row["step_ids"]):
            raise ValueError(
                f"example {name}: input_ids has {len(row['input_ids'])} tokens but step_ids "
                f"{len(row['step_ids'])}"
            )
        if not any(s >= 0 for s in row["step_ids"]):
            raise ValueError(
                f"example {name}: the rationale has no steps (no token with step_ids >= 0); "
                "drop it before scoring"
            )
    length = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    sids = torch.full((len(rows), length), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r["input_ids"])] = torch.as_tensor(r["input_ids"])
        sids[i, : len(r["step_ids"])] = torch.as_tensor(r["step_ids"])
    device = next(module.generator.parameters()).device
    w = module.token_weights(ids.to(device), sids.to(device)).cpu()
    return [w[i, : len(r["input_ids"])].tolist() for i, r in enumerate(rows)]


def score_dataset(
    dataset: Any,
    module: KeypointWeighting,
    *,
    tokenizer: Any = None,
    batch_size: int = 32,
    progress: bool = True,
) -> Any:
    """``dataset`` with a ``token_weights`` column (replaced if present)."""
    from tqdm.auto import tqdm

    missing = {"input_ids", "step_ids"} - set(dataset.column_names)
    if missing:
        raise ValueError(
            f"the dataset lacks {sorted(missing)}; prepare it with `kpod data prepare`"
        )
    check_dataset_tokenizer(dataset, module, tokenizer)
    module.eval()
    cols = [c for c in ("id", "input_ids", "step_ids") if c in dataset.column_names]
    view = dataset.select_columns(cols)
    weights: list[list[float]] = []
    for start in tqdm(range(0, len(view), batch_size), desc="Scoring tokens", disable=not progress):
        rows = [view[i] for i in range(start, min(start + batch_size, len(view)))]
        names = [_name(r, start + j) for j, r in enumerate(rows)]
        weights.extend(weights_for(module, rows, names))
    if COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(COLUMN)
    return attach_token_weights(dataset, weights)


def attach_token_weights(dataset: Any, weights: Sequence[Sequence[float]]) -> Any:
    """Add ``weights`` as the ``token_weights`` column after checking alignment."""
    if len(weights) != len(dataset):
        raise ValueError(
            f"got weights for {len(weights)} examples but the dataset has {len(dataset)}"
        )
    validate_token_weights(dataset, weights)
    import datasets

    feature = datasets.List(datasets.Value("float32"))
    return dataset.add_column(COLUMN, [list(map(float, w)) for w in weights], feature=feature)


def validate_token_weights(dataset: Any, weights: Sequence[Sequence[float]] | None = None) -> None:
    """Raise, naming the example, if token weights do not align with ``input_ids``.

    Checks ``weights`` if given, else the dataset's own ``token_weights``
    column: one weight per token, each in [0, 1], exactly 1.0 outside the
    rationale.
    """
    if weights is None:
        if COLUMN not in dataset.column_names:
            raise ValueError("the dataset has no token_weights column; run `kpod weights score`")
        weights = dataset[COLUMN]
    cols = [c for c in ("id", "input_ids", "step_ids") if c in dataset.column_names]
    for i, (row, w) in enumerate(zip(dataset.select_columns(cols), weights, strict=True)):
        n = len(row["input_ids"])
        if len(w) != n:
            raise ValueError(
                f"example {_name(row, i)}: {len(w)} token weights for {n} tokens; token_weights "
                "must align with input_ids (re-run `kpod weights score` on this dataset)"
            )
        for j, (x, s) in enumerate(zip(w, row.get("step_ids", [0] * n), strict=True)):
            if not 0.0 <= x <= 1.0 or (s < 0 and x != 1.0):
                raise ValueError(
                    f"example {_name(row, i)}: token {j} has weight {x}; weights must lie in [0, 1] "
                    "and be 1.0 for prompt and answer tokens"
                )


__all__ = [
    "COLUMN",
    "attach_token_weights",
    "check_example",
    "score_dataset",
    "validate_token_weights",
    "weights_for",
]
