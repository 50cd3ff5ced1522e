"""kpod.Curriculum: the KPOD schedule's invariants, oracle agreement, resume, input checks."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kpod
from kpod import _reference as ref


def corpus(seed: int, n: int = 300, max_steps: int = 6, zero_frac: float = 0.0):
    rng = np.random.default_rng(seed)
    n_steps = rng.integers(1, max_steps + 1, n)
    offsets = np.concatenate([[0], np.cumsum(n_steps)]).astype(np.int64)
    d = rng.gamma(2.0, 1.0, offsets[-1])
    d[rng.random(d.size) < zero_frac] = 0.0
    clusters = rng.integers(0, 5, n)
    return d, offsets, clusters


def run_all(cur: kpod.Curriculum, stages: int) -> list[kpod.StageResult]:
    return [cur.advance() for _ in range(stages)]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    stages=st.integers(1, 8),
    delta=st.integers(1, 3),
    p=st.sampled_from([0.0, 0.5, 2.0]),
    c0=st.sampled_from([0.0, 0.3, 0.9]),
    alg=st.sampled_from(["threshold", "greedy_max", "density"]),
    zero_frac=st.sampled_from([0.0, 0.2]),
)
def test_invariants(seed, stages, delta, p, c0, alg, zero_frac) -> None:
    d, off, cl = corpus(seed, n=80, zero_frac=zero_frac)
    cur = kpod.Curriculum(d, off, cl, stages=stages, p=p, c0=c0, delta_steps=delta, algorithm=alg)
    n_i = np.diff(off)
    start = cur.given_steps
    assert np.array_equal(start, np.maximum(n_i - delta, 0))
    assert cur.budget(0) == pytest.approx(c0 * cur.total_difficulty)
    assert cur.budget(stages) == cur.total_difficulty
    prev = start
    prev_h = cur.written
    for t in range(1, stages + 3):
        r = cur.advance()
        assert r.stage == t == cur.stage
        assert r.given_steps.dtype == np.int64
        assert (r.given_steps >= 0).all() and (r.given_steps <= prev).all()
        moved = np.flatnonzero(r.given_steps != prev)
        # Exactly the selected questions moved (by min(delta, c_i) steps up to T).
        assert sorted(r.selected.tolist()) == moved.tolist()
        if t <= stages:
            sel = r.selected
            assert np.array_equal(r.given_steps[sel], np.maximum(prev[sel] - delta, 0))
        assert r.budget == cur.budget(t)
        assert r.budget_increase == pytest.approx(r.budget - prev_h, abs=1e-12)
        if prev_h <= r.budget:  # feasible: H(t) <= D(t)
            assert r.written <= r.budget * (1 + 1e-12) + 1e-12
            assert r.difficulty_added <= r.budget_increase + 1e-12
        else:
            assert r.skipped and r.selected.size == 0 and r.written == prev_h
        assert r.written == pytest.approx(prev_h + r.difficulty_added, rel=1e-12, abs=1e-12)
        if t > stages:
            assert (r.given_steps == 0).all()
            assert r.written == cur.total_difficulty
        prev, prev_h = r.given_steps, r.written
    # H(t) is the difficulty of the written steps.
    h = sum(d[off[i] + prev[i] : off[i + 1]].sum() for i in range(len(prev)))
    assert math.isclose(h, cur.written, rel_tol=1e-9)


def test_matches_numpy_reference() -> None:
    d, off, cl = corpus(11, n=120)
    for alg in ("threshold", "greedy_max", "density"):
        cur = kpod.Curriculum(d, off, cl, stages=5, delta_steps=2, algorithm=alg)
        mine = run_all(cur, 7)
        theirs = ref.curriculum(d, off, cl, stages=5, n_advance=7, delta_steps=2, algorithm=alg)
        for a, b in zip(mine, theirs, strict=True):
            assert a.selected.tolist() == b["selected"]
            assert a.given_steps.tolist() == b["given_steps"]
            assert a.written == pytest.approx(b["written"], rel=1e-12)
            assert a.value == pytest.approx(b["value"], rel=1e-12)
            assert a.budget == pytest.approx(b["budget"], rel=1e-12)


@pytest.mark.parametrize("alg", ["threshold", "greedy_max", "density"])
@pytest.mark.parametrize("beta", [0.0, 12.0])
def test_each_stage_is_select_over_the_live_questions(alg: str, beta: float) -> None:
    # A stage solves select() over the questions with given steps left, each
    # costing its next delta steps, with budget D(t) - H(t-1): same picks (in
    # the same order), value and evaluations. Finished questions must not
    # change anything (the core keeps them in the ground set at cost +inf).
    for seed in range(4):
        d, off, cl = corpus(100 + seed, n=150, zero_frac=0.2)
        delta = 1 + seed % 2
        cur = kpod.Curriculum(d, off, cl, stages=6, delta_steps=delta, beta=beta, algorithm=alg)
        given = cur.given_steps
        for _ in range(6):
            live = np.flatnonzero(given > 0)
            costs = np.array(
                [d[off[i] + max(given[i] - delta, 0) : off[i] + given[i]].sum() for i in live]
            )
            r = cur.advance()
            if r.skipped:
                assert r.selected.size == 0
            else:
                want = kpod.select(
                    costs, cl[live], budget=r.budget_increase, beta=beta, algorithm=alg
                )
                assert r.selected.tolist() == live[want.indices].tolist()
                assert r.value == pytest.approx(want.value, rel=1e-12)
                assert r.evaluations == want.evaluations
            given = r.given_steps
        assert (given == 0).sum() > 0  # some questions finished along the way


def test_deterministic_and_resume_is_bit_identical(tmp_path) -> None:
    d, off, cl = corpus(5, n=500)
    kw = {"stages": 6, "beta": 12.0}
    full = run_all(kpod.Curriculum(d, off, cl, **kw), 9)
    again = run_all(kpod.Curriculum(d, off, cl, **kw), 9)
    for a, b in zip(full, again, strict=True):
        assert a.selected.tolist() == b.selected.tolist() and a.written == b.written
    first = kpod.Curriculum(d, off, cl, **kw)
    run_all(first, 4)
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps(first.state_dict()))
    resumed = kpod.Curriculum(d, off, cl, **kw)
    resumed.load_state_dict(pickle.loads(path.read_bytes()))
    assert resumed.stage == 4
    rest = run_all(resumed, 5)
    for a, b in zip(full[4:], rest, strict=True):
        assert a.stage == b.stage
        assert a.selected.tolist() == b.selected.tolist()
        assert a.given_steps.tolist() == b.given_steps.tolist()
        assert a.written.hex() == b.written.hex()
        assert a.value.hex() == b.value.hex()
        assert a.evaluations == b.evaluations


def test_state_dict_from_other_data_or_config_is_rejected() -> None:
    d, off, cl = corpus(5, n=50)
    state = kpod.Curriculum(d, off, cl, stages=3).state_dict()
    with pytest.raises(ValueError, match="config"):
        kpod.Curriculum(d, off, cl, stages=4).load_state_dict(state)
    with pytest.raises(ValueError, match="total difficulty"):
        kpod.Curriculum(d * 2, off, cl, stages=3).load_state_dict(state)
    bad = dict(state, given_steps=state["given_steps"] + 100)
    with pytest.raises(ValueError, match="given_steps"):
        kpod.Curriculum(d, off, cl, stages=3).load_state_dict(bad)
    with pytest.raises(ValueError, match="state_dict"):
        kpod.Curriculum(d, off, cl, stages=3).load_state_dict({"stage": 1})


def test_question_with_fewer_given_steps_than_delta_moves_them_all() -> None:
    # delta = 2. Question 0 (3 steps) starts with c = 1: its one given step moves
    # (cost 1.0); question 1 (4 steps) starts with c = 2 and would move two
    # steps (cost 2.0), more than the stage's budget increase.
    d = np.array([1.0, 2.0, 4.0, 1.0, 1.0, 1.0, 1.0])
    off = np.array([0, 3, 7])
    cur = kpod.Curriculum(d, off, [0, 1], stages=2, delta_steps=2, c0=0.8, beta=0.0)
    assert cur.given_steps.tolist() == [1, 2]
    assert cur.written == 8.0
    r = cur.advance()
    assert r.budget == pytest.approx(0.8 * 11 + 0.2 * 11 * 0.5**1.5)
    assert 1.0 < r.budget_increase < 2.0
    assert r.selected.tolist() == [0]
    assert r.given_steps.tolist() == [0, 2]
    assert r.difficulty_added == 1.0 and r.written == 9.0
    r = cur.advance()  # D(2) = B: question 1's two steps fit now
    assert r.selected.tolist() == [1] and r.given_steps.tolist() == [0, 0]
    r = cur.advance()
    assert r.selected.size == 0 and r.written == 11.0


BAD = [
    ({"step_difficulty": [1.0, -1.0, 1.0]}, r"step_difficulty\[1\]"),
    ({"step_difficulty": [1.0, np.nan, 1.0]}, r"step_difficulty\[1\]"),
    ({"step_difficulty": [1e308, 1e308, 1.0]}, "step_difficulty: the sum overflows"),
    ({"step_offsets": [0, 3]}, "clusters has length 2"),
    ({"step_offsets": [0, 2, 1]}, "step_offsets"),
    ({"step_offsets": [1, 2, 3]}, "step_offsets"),
    ({"step_offsets": []}, "step_offsets"),
    ({"clusters": [0, -1]}, r"clusters\[1\]"),
    ({"clusters": ["a", "b"]}, "clusters has unsupported dtype"),
    ({"stages": 0}, "stages"),
    ({"stages": 2.5}, "stages"),
    ({"p": -1.0}, "p must"),
    ({"c0": 1.5}, "c0"),
    ({"beta": np.nan}, "beta"),
    ({"delta_steps": 0}, "delta_steps"),
    ({"eps": 1.0}, "eps"),
    ({"algorithm": "best"}, "algorithm"),
]


@pytest.mark.parametrize(("change", "needle"), BAD)
def test_bad_input_raises_value_error_naming_the_argument(change: dict, needle: str) -> None:
    args: dict = {
        "step_difficulty": [1.0, 2.0, 3.0],
        "step_offsets": [0, 1, 3],
        "clusters": [0, 1],
        "stages": 3,
    }
    args.update(change)
    pos = [args.pop(k) for k in ("step_difficulty", "step_offsets", "clusters")]
    with pytest.raises(ValueError, match=needle):
        kpod.Curriculum(*pos, **args)


def test_empty_corpus_and_questions_without_steps() -> None:
    cur = kpod.Curriculum([], [0], [], stages=2)
    r = cur.advance()
    assert r.selected.size == 0 and r.given_steps.size == 0
    cur = kpod.Curriculum([1.0], [0, 0, 1], [0, 0], stages=1)
    assert cur.given_steps.tolist() == [0, 0]
    assert cur.advance().selected.size == 0


def test_stage_record_eligible_bound_and_its_one_serialisation() -> None:
    import copy
    import json

    d, off, cl = corpus(3, n=60)
    cur = kpod.Curriculum(d, off, cl, stages=4, delta_steps=1)
    given = cur.given_steps
    for _ in range(6):
        r = cur.advance()
        # eligible: questions with given steps before the stage; bound: some held back
        assert r.eligible == int(np.count_nonzero(given))
        assert r.bound == (r.selected.size < r.eligible)
        if r.stage > 4:
            assert not r.bound and r.selected.size == r.eligible
        line = json.dumps(r.to_dict())  # JSON-ready as it is
        back = kpod.StageResult.from_dict(json.loads(line))
        assert back == r and back.written.hex() == r.written.hex()
        assert back.to_dict() == r.to_dict()
        assert pickle.loads(pickle.dumps(r)) == r == copy.deepcopy(r)
        assert isinstance(r.to_dict()["selected"], list)
        assert r.selected.dtype == np.int64 and r.given_steps.dtype == np.int64
        given = r.given_steps
    assert repr(r).startswith(f"StageResult(stage={r.stage}, selected=<")
    assert f"eligible={r.eligible}, bound={r.bound})" in repr(r)
    with pytest.raises(AttributeError):
        r.stage = 1  # type: ignore[misc]
    r.given_steps[:] = 99  # a copy: the record does not change
    assert (r.given_steps != 99).all()
    with pytest.raises(ValueError, match='missing key "written"'):
        kpod.StageResult.from_dict({k: v for k, v in r.to_dict().items() if k != "written"})
    with pytest.raises(ValueError, match="selected"):
        kpod.StageResult.from_dict({**r.to_dict(), "selected": ["a"]})


def test_budget_never_bound_reads_stage_records() -> None:
    from kpod.schedule import budget_never_bound

    d, off, cl = corpus(4, n=60)
    slack = run_all(kpod.Curriculum(d, off, cl, stages=1), 2)  # D(1) = B: all move
    assert budget_never_bound(slack)
    tight = run_all(kpod.Curriculum(d, off, cl, stages=8), 8)
    assert any(r.bound for r in tight) and not budget_never_bound(tight)
    assert not budget_never_bound([])


def test_rescore_keeps_progress_and_recomputes_totals() -> None:
    d, off, cl = corpus(6, n=80)
    cur = kpod.Curriculum(d, off, cl, stages=5)
    run_all(cur, 2)
    given = cur.given_steps
    new = d[::-1].copy()
    cur.rescore(new)
    assert cur.stage == 2 and np.array_equal(cur.given_steps, given)
    assert cur.total_difficulty == kpod.Curriculum(new, off, cl, stages=5).total_difficulty
    h = sum(new[off[i] + given[i] : off[i + 1]].sum() for i in range(len(given)))
    assert math.isclose(cur.written, h, rel_tol=1e-12)
    assert cur.advance().stage == 3
    with pytest.raises(ValueError, match="step_difficulty"):
        cur.rescore(new[1:])
    with pytest.raises(ValueError, match=r"step_difficulty\[0\]"):
        cur.rescore(np.concatenate([[-1.0], new[1:]]))
