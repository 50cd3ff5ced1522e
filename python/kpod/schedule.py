"""The KPOD scheduler: knapsack-constrained submodular selection and the curriculum.

Typed facade over the native core ``kpod._kpod`` (Rust, GIL released during
the work). Inputs are validated here, with messages that name the argument,
say what is wrong and how to fix it, and converted once to contiguous
``float64`` / ``int64`` arrays. See ``docs/scheduler.md`` for the algorithms
and their guarantees.

Objective, for a set S of items::

    F(S) = sum_{i in S} a_i + beta * sum_k g( sum_{i in S, cluster(i) = k} v_i )

with ``a = modular`` (default: the costs), ``v = values`` (default: 1) and
``g = concave`` (``"sqrt"``, ``"log1p"`` or ``("power", q)`` with q in (0, 1]).
KPOD's Eq. 12 is the default: a = cost, v = 1, g = sqrt, beta = 12.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALGORITHMS",
    "Concave",
    "Curriculum",
    "Selection",
    "StageResult",
    "budget_never_bound",
    "select",
]

ALGORITHMS: tuple[str, ...] = ("threshold", "greedy_max", "density")
Concave = Literal["sqrt", "log1p"] | tuple[Literal["power"], float]
ArrayLike = npt.ArrayLike

_STATE_FORMAT = "kpod.Curriculum/1"

if TYPE_CHECKING:
    from kpod._kpod import StageResult


_NATIVE: Any = None


def __getattr__(name: str) -> Any:
    # StageResult is the native record itself; resolved on first use so that
    # importing this module does not need the native build.
    if name == "StageResult":
        return _native().StageResult
    raise AttributeError(f"module 'kpod.schedule' has no attribute {name!r}")


def _native() -> Any:
    global _NATIVE
    if _NATIVE is None:
        try:
            from kpod import _kpod
        except ImportError as exc:  # pragma: no cover - depends on the build
            raise ImportError(
                "kpod's native scheduler (kpod._kpod) is not built; run "
                "`maturin develop --release` in the repository (or `pip install kpod`)"
            ) from exc
        _NATIVE = _kpod
    return _NATIVE


# ----------------------------------------------------------------------------- validation

_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)


def _array(name: str, x: Any, kind: Literal["float", "int"]) -> np.ndarray:
    """Converts ``x`` once to a contiguous 1-D float64 / int64 array, or raises ValueError."""
    target = _FLOAT64 if kind == "float" else _INT64
    if type(x) is np.ndarray and x.dtype == target and x.ndim == 1 and x.flags.c_contiguous:
        return x  # already what the core reads: no checks or copies to make
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    allowed = "iuf" if kind == "float" else "iu"
    if arr.dtype.kind not in allowed and arr.size > 0:
        want = "real numbers (float or int)" if kind == "float" else "integers"
        raise ValueError(f"{name} has unsupported dtype {arr.dtype}; pass an array of {want}")
    if kind == "int":
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} has ids above the int64 range; renumber them")
        return np.ascontiguousarray(arr, dtype=np.int64)
    return np.ascontiguousarray(arr, dtype=np.float64)


def _real(name: str, x: Any) -> float:
    """``x`` as a float, or ValueError if it is not a real number (its range is the core's check)."""
    if type(x) is not float and type(x) is not int:
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise ValueError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    return float(x)


def _int(name: str, x: Any, lo: int = 0, hi: int = 2**32 - 1) -> int:
    """``x`` as an int in what the core's integer type holds (its domain is the core's check)."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {type(x).__name__} {x!r}")
    if not lo <= int(x) <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {x!r}")
    return int(x)


def _concave(concave: Any) -> tuple[str, float]:
    if isinstance(concave, str):
        if concave in ("sqrt", "log1p"):
            return concave, 1.0
        if concave == "power":
            raise ValueError(
                'concave="power" needs its exponent: pass ("power", q) with q in (0, 1]'
            )
    elif isinstance(concave, (tuple, list)) and len(concave) == 2 and concave[0] == "power":
        q = _real("concave power q", concave[1])
        return "power", q
    raise ValueError(
        f'concave must be "sqrt", "log1p" or ("power", q) with q in (0, 1], got {concave!r}'
    )


def _text(name: str, x: Any) -> str:
    if not isinstance(x, str):
        raise ValueError(f"{name} must be a string, got {type(x).__name__} {x!r}")
    return x


def _algorithm(algorithm: Any) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    return str(algorithm)


# ----------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Result of :func:`select`."""

    indices: np.ndarray
    """Chosen item indices (int64) in pick order; zero-cost items come first."""
    value: float
    """F of the chosen set."""
    cost: float
    """Total cost of the chosen set (<= budget)."""
    evaluations: int
    """Marginal-gain evaluations the algorithm made."""


def select(
    costs: ArrayLike,
    clusters: ArrayLike,
    *,
    budget: float,
    beta: float = 12.0,
    modular: ArrayLike | None = None,
    values: ArrayLike | None = None,
    concave: str | tuple[str, float] = "sqrt",
    algorithm: str = "threshold",
    eps: float = 0.1,
) -> Selection:
    """Maximises F(S) subject to ``sum(costs[S]) <= budget``.

    Args:
        costs: c_i >= 0 per item. Items costing more than ``budget`` are
            dropped; zero-cost items are always taken (first, in index order).
        clusters: integer cluster id >= 0 per item.
        budget: the knapsack budget B (finite, >= 0).
        beta: weight of the diversity term (>= 0).
        modular: a_i >= 0 per item; default the costs (KPOD).
        values: v_i >= 0 per item inside its cluster; default 1 (KPOD).
        concave: g: ``"sqrt"`` (KPOD), ``"log1p"`` or ``("power", q)``, q in (0, 1].
        algorithm: ``"threshold"`` (1/2 - eps guarantee, O(n/eps log 1/eps)
            evaluations; default), ``"greedy_max"`` (exact density greedy plus
            the best single addition, 1/2 guarantee) or ``"density"`` (plain
            cost-benefit greedy, no guarantee; for comparison).
        eps: accuracy of ``"threshold"``, in (0, 1).

    Raises:
        ValueError: on any invalid argument; the message names it.
    """
    # Dtypes, shapes, layout and scalar types are settled here; element values
    # (finite, >= 0, ids >= 0), lengths and the scalars' ranges are checked
    # once, by the native core, whose errors name the argument (and the first
    # bad index) the same way.
    c = _array("costs", costs, "float")
    k = _array("clusters", clusters, "int")
    a = None if modular is None else _array("modular", modular, "float")
    v = None if values is None else _array("values", values, "float")
    b = _real("budget", budget)
    be = _real("beta", beta)
    e = _real("eps", eps)
    kind, q = _concave(concave)
    alg = _algorithm(algorithm)
    idx, value, cost, evals = _native().select(
        c, k, budget=b, beta=be, modular=a, values=v, concave=kind, power=q, algorithm=alg, eps=e
    )
    return Selection(indices=idx, value=float(value), cost=float(cost), evaluations=int(evals))


# ----------------------------------------------------------------------------- curriculum


class Curriculum:
    """The KPOD progressive schedule: c_i(t) given steps per question, in Rust.

    ``step_difficulty`` is the flat array of per-step difficulties d (Eq. 8)
    of all questions, ``step_offsets`` its CSR offsets (question i owns
    ``step_difficulty[step_offsets[i]:step_offsets[i + 1]]``), ``clusters``
    one id per question. Stage 0: every question writes its last
    ``delta_steps`` steps. Each :meth:`advance` runs stage t = stage + 1:
    for t <= ``stages`` it selects questions under the budget increase
    D(t) - H(t-1) and moves ``delta_steps`` more steps of each from input to
    output; for t > ``stages`` every question gets its full rationale
    (c_i = 0). ``c0`` is C0 as a fraction of the total difficulty B.
    """

    def __init__(
        self,
        step_difficulty: ArrayLike,
        step_offsets: ArrayLike,
        clusters: ArrayLike,
        *,
        stages: int,
        p: float = 0.5,
        c0: float = 0.3,
        beta: float = 12.0,
        delta_steps: int = 1,
        eps: float = 0.1,
        algorithm: str = "threshold",
    ) -> None:
        # Types and layout are settled here; every value (step difficulties,
        # offsets, cluster ids, the knobs' ranges) is checked once, by the core.
        d = _array("step_difficulty", step_difficulty, "float")
        o = _array("step_offsets", step_offsets, "int")
        k = _array("clusters", clusters, "int")
        self._config: dict[str, Any] = {
            "stages": _int("stages", stages),
            "p": _real("p", p),
            "c0": _real("c0", c0),
            "beta": _real("beta", beta),
            "delta_steps": _int("delta_steps", delta_steps),
            "eps": _real("eps", eps),
            "algorithm": _text("algorithm", algorithm),
        }
        self._inner = _native().Curriculum(d, o, k, **self._config)

    @property
    def config(self) -> dict[str, Any]:
        """The schedule's knobs (a copy)."""
        return dict(self._config)

    @property
    def stage(self) -> int:
        """Stages run so far (0 before the first :meth:`advance`)."""
        return int(self._inner.stage)

    @property
    def given_steps(self) -> np.ndarray:
        """c_i of every question now (int64 copy)."""
        return np.asarray(self._inner.given_steps)

    @property
    def written(self) -> float:
        """H of the current state: total difficulty of the steps the student writes."""
        return float(self._inner.written)

    @property
    def total_difficulty(self) -> float:
        """B, the total difficulty of all steps."""
        return float(self._inner.total_difficulty)

    @property
    def n_questions(self) -> int:
        """Number of questions."""
        return int(self._inner.n_questions)

    def budget(self, t: int) -> float:
        """D(t) = C0 + (B - C0) (t / T)^(p + 1) for t <= T, and B after."""
        return float(self._inner.budget(_int("t", t, 0, 2**63 - 1)))

    def advance(self) -> StageResult:
        """Runs the next stage and returns its record (:class:`StageResult`)."""
        result: StageResult = self._inner.advance()
        return result

    def rescore(self, step_difficulty: ArrayLike) -> None:
        """Replaces the step difficulties, keeping the stage and every question's given steps.

        Same questions and step counts (``step_difficulty`` as flat as at
        construction); B and H are recomputed from the new values, so later
        stages budget and cost with them.
        """
        self._inner.rescore(_array("step_difficulty", step_difficulty, "float"))

    def state_dict(self) -> dict[str, Any]:
        """The mutable state (numpy + plain Python values), for :meth:`load_state_dict`."""
        return {"format": _STATE_FORMAT, **self._inner.state_dict(), "config": dict(self._config)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict` of a curriculum built from the same data and config.

        Continuing afterwards is bit-identical to never having stopped.
        """
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise ValueError(
                f"state_dict: not a kpod.Curriculum state (expected format {_STATE_FORMAT!r})"
            )
        missing = {"stage", "given_steps", "written", "total_difficulty", "config"} - state.keys()
        if missing:
            raise ValueError(f"state_dict: missing keys {sorted(missing)}")
        if state["config"] != self._config:
            raise ValueError(
                f"state_dict: saved with config {state['config']} but this curriculum has "
                f"{self._config}; build the curriculum with the same arguments"
            )
        given = _array("state_dict['given_steps']", state["given_steps"], "int")
        self._inner.load_state_dict(
            {
                "stage": _int("state_dict['stage']", state["stage"]),
                "given_steps": given,
                "written": _real("state_dict['written']", state["written"]),
                "total_difficulty": _real(
                    "state_dict['total_difficulty']", state["total_difficulty"]
                ),
            }
        )


def budget_never_bound(records: Iterable[StageResult]) -> bool:
    """Whether a schedule's difficulty budget held no question back at any stage.

    True when some stage had a question able to advance (``eligible``) and no
    stage was ``bound``: then the schedule is fixed by ``delta_steps`` and T
    alone, and the step difficulties, ``beta`` and the clusters do not change
    it. Stages after T are never bound, so passing them changes nothing.
    """
    staged = list(records)
    return bool(staged) and not any(r.bound for r in staged) and any(r.eligible for r in staged)
