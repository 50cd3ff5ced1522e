"""Question clusters (K-means over mean-pooled input embeddings) and teacher filtering."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from kpod.data import prepare_examples, read_records
from kpod.data.clusters import (
    add_clusters,
    cluster_questions,
    kmeans,
    mean_pool,
    question_token_ids,
)
from kpod.data.filtering import filter_by_answer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


@pytest.fixture(scope="module")
def tok():
    from kpod.testing import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="module")
def prepared(tok):
    recs = list(itertools.islice(read_records(EXAMPLES / "gsm8k_train.jsonl"), 60))
    return prepare_examples(recs, tok)


def test_mean_pool_matches_numpy():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(50, 8)).astype(np.float32)
    ids = [[1, 2, 3], [4], [5, 5, 49], []]
    got = mean_pool(ids, matrix, chunk=2)
    for row, toks in zip(got, ids, strict=True):
        want = matrix[toks].mean(axis=0) if toks else np.zeros(8)
        np.testing.assert_allclose(row, want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        mean_pool([[50]], matrix)


def test_question_tokens_from_prepared_rows_equal_question_alone(prepared, tok):
    from_prepared = question_token_ids(prepared)
    alone = question_token_ids(list(prepared["question"]), tok)
    # the prompt is "Q:" + question + template; byte-level BPE attaches the question's leading space
    same = sum(
        a == tok(" " + q, add_special_tokens=False)["input_ids"]
        for a, q in zip(from_prepared, prepared["question"], strict=True)
    )
    assert same == len(prepared)
    assert len(alone) == len(prepared)


def test_kmeans_recovers_separated_blobs_and_is_deterministic():
    rng = np.random.default_rng(1)
    centers = rng.normal(scale=20, size=(5, 16))
    truth = np.repeat(np.arange(5), 40)
    x = centers[truth] + rng.normal(size=(200, 16))
    labels = kmeans(x, 5, seed=3)
    assert labels.dtype == np.int64 and labels[0] == 0
    # same partition as the truth, up to renaming
    assert len({(a, b) for a, b in zip(truth, labels, strict=True)}) == 5
    np.testing.assert_array_equal(labels, kmeans(x, 5, seed=3))
    mini = kmeans(x, 5, seed=3, minibatch_threshold=10)  # MiniBatchKMeans path
    assert len({(a, b) for a, b in zip(truth, mini, strict=True)}) == 5


def test_kmeans_edge_cases():
    assert kmeans(np.ones((3, 2)), 5).tolist() == [0, 0, 0]
    assert kmeans(np.array([[0.0], [1.0], [0.0]]), 5).tolist() == [0, 1, 0]
    assert kmeans(np.random.default_rng(0).normal(size=(20, 3)), 1).tolist() == [0] * 20
    with pytest.raises(ValueError, match="NaN"):
        kmeans(np.array([[np.nan, 1.0], [0.0, 1.0]]), 2)
    with pytest.raises(ValueError, match="k must be"):
        kmeans(np.zeros((4, 2)), 0)


def test_cluster_questions_with_model_matrix_or_embeddings(prepared, tok):
    from kpod.testing import tiny_causal_lm

    model = tiny_causal_lm(tok)
    a = cluster_questions(prepared, model=model, k=5, seed=0)
    b = cluster_questions(
        prepared, embedding_matrix=model.get_input_embeddings().weight.detach().numpy(), k=5
    )
    np.testing.assert_array_equal(a, b)
    assert a.shape == (len(prepared),) and set(a.tolist()) == set(range(5))
    given = np.eye(len(prepared))[:, :7] * 10
    c = cluster_questions(prepared, embeddings=given, k=3)
    assert c.shape == (len(prepared),)
    with pytest.raises(ValueError, match="embeddings for"):
        cluster_questions(prepared, embeddings=given[:5], k=3)
    ds = add_clusters(prepared, model=model, k=4)
    assert ds["cluster"] == cluster_questions(prepared, model=model, k=4).tolist()


def test_filter_by_answer_counts_and_policies():
    recs = [
        {
            "id": "a",
            "question": "q",
            "rationale": "2 + 2 = 4.\nTherefore, the answer is 4.",
            "answer": "4",
            "choices": [],
        },
        {
            "id": "b",
            "question": "q",
            "rationale": "2 + 3 = 5. The answer is 5.",
            "answer": "6",
            "choices": [],
        },
        {"id": "c", "question": "q", "rationale": "No idea.", "answer": "1", "choices": []},
        {
            "id": "d",
            "question": "q",
            "rationale": "So the answer is (b) dog.",
            "answer": "B",
            "choices": ["cat", "dog"],
        },
        {
            "id": "e",
            "question": "q",
            "rationale": "It costs $1,200.00 in total.",
            "answer": "1200",
            "choices": [],
        },
    ]
    kept, rep = filter_by_answer(recs)
    assert [r["id"] for r in kept] == ["a", "d", "e"]
    assert (rep.total, rep.agree, rep.disagree, rep.no_answer, rep.kept, rep.dropped) == (
        5,
        3,
        1,
        1,
        3,
        2,
    )
    assert rep.dropped_ids == ["b", "c"]
    assert "3/5 agree" in rep.summary()
    allrows, rep2 = filter_by_answer(recs, keep_disagreeing=True)
    assert len(allrows) == 5 and rep2.dropped == 0
    assert [r["teacher_agrees"] for r in allrows] == [True, False, False, True, True]
    assert allrows[1]["teacher_answer"] == "5"


def test_filter_by_answer_on_dataset():
    import datasets

    ds = datasets.Dataset.from_list(
        [
            {
                "id": "a",
                "question": "q",
                "rationale": "The answer is 3.",
                "answer": "3",
                "choices": [],
            },
            {
                "id": "b",
                "question": "q",
                "rationale": "The answer is 4.",
                "answer": "3",
                "choices": [],
            },
        ]
    )
    kept, rep = filter_by_answer(ds)
    assert kept["id"] == ["a"] and rep.dropped_ids == ["b"]


def test_raw_questions_embedded_in_chunks(tok):
    from kpod.data.clusters import question_embeddings

    questions = [
        r["question"] for r in itertools.islice(read_records(EXAMPLES / "gsm8k_train.jsonl"), 23)
    ]
    matrix = np.random.default_rng(0).normal(size=(len(tok), 6)).astype(np.float32)
    got = question_embeddings(questions, tokenizer=tok, embedding_matrix=matrix, chunk=5)
    want = np.stack(
        [matrix[tok(q, add_special_tokens=False)["input_ids"]].mean(axis=0) for q in questions]
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="tokenizer"):
        question_embeddings(questions, embedding_matrix=matrix)
