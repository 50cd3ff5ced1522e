"""Question clusters for the diversity term of the schedule (kpod-method section 4).

[kpod decision] The paper averages GloVe vectors; kpod mean-pools the
student's own input embeddings over each question's tokens (no download), or
takes any embedding matrix, or ready-made per-question vectors. K-means comes
from scikit-learn: ``KMeans`` up to ``minibatch_threshold`` questions, then
``MiniBatchKMeans``; both seeded, so the same input gives the same labels.
Labels are renumbered in order of first appearance (question 0 is in cluster 0).

Question tokens: with a prepared dataset (``input_ids``, ``step_ids``) they are
the prompt tokens minus the template tokens every prompt shares (the longest
common prefix and suffix over all prompts, i.e. "Q:" and "\\nA: Let's think
step by step.\\n"); with raw questions and a tokenizer, the question tokenized
alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kpod.data.prepared import PROMPT, optional_column, with_column

__all__ = [
    "DEFAULT_MINIBATCH_THRESHOLD",
    "add_clusters",
    "cluster_questions",
    "kmeans",
    "mean_pool",
    "question_embeddings",
    "question_token_ids",
]

DEFAULT_MINIBATCH_THRESHOLD = 20_000


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def question_token_ids(data: Any, tokenizer: Any = None) -> list[list[int]]:
    """Token ids of each question (see the module docstring for the two sources)."""
    input_ids = optional_column(data, "input_ids")
    step_ids = optional_column(data, "step_ids")
    if input_ids is not None and step_ids is not None:
        prompts = [
            [t for t, s in zip(ids, sids, strict=True) if s == PROMPT]
            for ids, sids in zip(input_ids, step_ids, strict=True)
        ]
        if not prompts:
            return []
        pre = len(prompts[0])
        suf = len(prompts[0])
        first_rev = prompts[0][::-1]
        for p in prompts[1:]:
            pre = min(pre, _common_prefix_len(prompts[0], p))
            suf = min(suf, _common_prefix_len(first_rev, p[::-1]))
        out = []
        for p in prompts:
            q = p[pre : len(p) - suf] if len(prompts) > 1 else p
            out.append(q if q else p)
        return out
    questions = optional_column(data, "question")
    if questions is None:
        if isinstance(data, Sequence) and all(isinstance(q, str) for q in data):
            questions = list(data)
        else:
            raise ValueError(
                "cluster input needs 'input_ids' and 'step_ids' (a prepared dataset) or "
                "'question' texts together with a tokenizer"
            )
    if tokenizer is None:
        raise ValueError("raw questions need a tokenizer= to be embedded")
    enc = tokenizer([q.strip() for q in questions], add_special_tokens=False)
    return [list(x) for x in enc["input_ids"]]


def mean_pool(
    token_ids: Sequence[Sequence[int]], matrix: Any, *, chunk: int = 65_536
) -> np.ndarray:
    """Mean of ``matrix`` rows over each token list -> ``float32 (n, dim)``.

    ``matrix`` is a ``(vocab, dim)`` numpy array or torch tensor. Runs in chunks
    with ``torch.nn.functional.embedding_bag`` (multi-threaded, no (tokens, dim)
    intermediate). Empty lists give a zero vector.
    """
    import torch

    weight = (
        matrix.detach()
        if isinstance(matrix, torch.Tensor)
        else torch.from_numpy(np.asarray(matrix))
    )
    weight = weight.to(torch.float32).cpu()
    vocab = weight.shape[0]
    n = len(token_ids)
    out = np.zeros((n, weight.shape[1]), dtype=np.float32)
    for lo in range(0, n, chunk):
        part = token_ids[lo : lo + chunk]
        lengths = np.fromiter((len(t) for t in part), dtype=np.int64, count=len(part))
        flat = np.fromiter((i for t in part for i in t), dtype=np.int64, count=int(lengths.sum()))
        if flat.size and (flat.min() < 0 or flat.max() >= vocab):
            raise ValueError(f"token id out of range for an embedding matrix with {vocab} rows")
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        with torch.no_grad():
            pooled = torch.nn.functional.embedding_bag(
                torch.from_numpy(flat), weight, torch.from_numpy(offsets), mode="mean"
            )
        out[lo : lo + len(part)] = pooled.numpy()
    return out


def _input_embedding_matrix(model: Any) -> Any:
    get = getattr(model, "get_input_embeddings", None)
    if get is None or get() is None:
        raise ValueError("model has no input embeddings; pass embedding_matrix= instead")
    return get().weight


def question_embeddings(
    data: Any,
    *,
    model: Any = None,
    embedding_matrix: Any = None,
    tokenizer: Any = None,
    chunk: int = 65_536,
) -> np.ndarray:
    """Mean-pooled input embeddings of each question, ``float32 (n, dim)``.

    Raw questions are tokenized and pooled ``chunk`` at a time, so only the
    ``(n, dim)`` result grows with ``n`` (1M questions x 576 dims = 2.3 GB).
    """
    if embedding_matrix is None:
        if model is None:
            raise ValueError("pass model= (its input embeddings are pooled) or embedding_matrix=")
        embedding_matrix = _input_embedding_matrix(model)
    if optional_column(data, "input_ids") is not None:
        return mean_pool(question_token_ids(data), embedding_matrix, chunk=chunk)
    questions = optional_column(data, "question")
    if questions is None:
        questions = list(data) if isinstance(data, Sequence) else None
    if questions is None or not all(isinstance(q, str) for q in questions):
        raise ValueError(
            "cluster input needs 'input_ids' and 'step_ids' (a prepared dataset) or "
            "'question' texts together with a tokenizer"
        )
    if tokenizer is None:
        raise ValueError("raw questions need a tokenizer= to be embedded")
    if not questions:
        raise ValueError("no questions to embed")
    out: np.ndarray | None = None
    for lo in range(0, len(questions), chunk):
        ids = question_token_ids(questions[lo : lo + chunk], tokenizer)
        part = mean_pool(ids, embedding_matrix, chunk=chunk)
        if out is None:
            out = np.empty((len(questions), part.shape[1]), dtype=np.float32)
        out[lo : lo + len(part)] = part
    assert out is not None
    return out


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    _, first = np.unique(labels, return_index=True)
    order = labels[np.sort(first)]
    remap = np.empty(labels.max() + 1, dtype=np.int64)
    remap[order] = np.arange(order.size)
    return remap[labels]


def kmeans(
    embeddings: Any,
    k: int = 5,
    *,
    seed: int = 0,
    minibatch_threshold: int = DEFAULT_MINIBATCH_THRESHOLD,
) -> np.ndarray:
    """K-means labels (``int64``) for the rows of ``embeddings``.

    With ``n <= k`` rows each distinct row is its own cluster. ``KMeans`` (n_init 4)
    up to ``minibatch_threshold`` rows, else ``MiniBatchKMeans`` (batch 4096,
    n_init 3).
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty (n, dim) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or infinite values")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = x.shape[0]
    if n <= k or k == 1:
        # nothing to fit: identical rows share a cluster, every other row is its own
        if k == 1:
            return np.zeros(n, dtype=np.int64)
        _, inverse = np.unique(x, axis=0, return_inverse=True)
        return _first_appearance(np.asarray(inverse, dtype=np.int64).ravel())
    if n <= minibatch_threshold:
        model: Any = KMeans(n_clusters=k, random_state=seed, n_init=4)
    else:
        model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3)
    labels = model.fit_predict(x)
    return _first_appearance(np.asarray(labels, dtype=np.int64))


def cluster_questions(
    data: Any,
    *,
    model: Any = None,
    embeddings: Any = None,
    embedding_matrix: Any = None,
    tokenizer: Any = None,
    k: int = 5,
    seed: int = 0,
    minibatch_threshold: int = DEFAULT_MINIBATCH_THRESHOLD,
) -> np.ndarray:
    """Cluster id (``int64``) per question of ``data`` (K = 5 by default, as in the paper).

    ``embeddings``: ready-made per-question vectors ``(n, dim)``; else the
    questions are embedded with :func:`question_embeddings` (``model`` or
    ``embedding_matrix``, plus ``tokenizer`` for raw questions).
    """
    if embeddings is None:
        embeddings = question_embeddings(
            data, model=model, embedding_matrix=embedding_matrix, tokenizer=tokenizer
        )
    n = len(data) if data is not None else len(embeddings)
    if len(embeddings) != n:
        raise ValueError(f"{len(embeddings)} embeddings for {n} questions")
    return kmeans(embeddings, k, seed=seed, minibatch_threshold=minibatch_threshold)


def add_clusters(dataset: Any, **kwargs: Any) -> Any:
    """``dataset`` with an ``int64`` ``cluster`` column (see :func:`cluster_questions`)."""
    labels = cluster_questions(dataset, **kwargs)
    return with_column(dataset, "cluster", labels.tolist())
