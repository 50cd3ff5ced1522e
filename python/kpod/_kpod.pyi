"""Native scheduler core of kpod (Rust, PyO3). Use :mod:`kpod.schedule` instead.

Every function takes contiguous 1-D ``float64`` / ``int64`` arrays (the
facade coerces once), releases the GIL while it works and raises
``ValueError`` for invalid input.
"""

from collections.abc import Mapping, Sequence
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = ["Curriculum", "StageResult", "__version__", "select"]

__version__: str

def select(
    costs: npt.NDArray[np.float64],
    clusters: npt.NDArray[np.int64],
    *,
    budget: float,
    beta: float,
    modular: npt.NDArray[np.float64] | None,
    values: npt.NDArray[np.float64] | None,
    concave: str,
    power: float,
    algorithm: str,
    eps: float,
) -> tuple[npt.NDArray[np.int64], float, float, int]:
    """Maximise F under the budget; returns (indices, value, cost, evaluations)."""

@final
class StageResult:
    """One curriculum stage; see :class:`kpod.schedule.StageResult`."""

    def __new__(
        cls,
        *,
        stage: int,
        selected: npt.ArrayLike | Sequence[int],
        given_steps: npt.ArrayLike | Sequence[int],
        budget_increase: float,
        difficulty_added: float,
        value: float,
        evaluations: int,
        budget: float,
        written: float,
        skipped: bool,
        eligible: int,
        bound: bool,
    ) -> StageResult: ...
    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> StageResult:
        """The record from a :meth:`to_dict` mapping (a ``kpod_stages.jsonl`` line)."""
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ints, floats, bools; ``selected`` and ``given_steps`` as lists of int."""
    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]: ...
    def __eq__(self, value: object, /) -> bool: ...
    @property
    def stage(self) -> int:
        """The stage t that ran (1-based)."""
    @property
    def selected(self) -> npt.NDArray[np.int64]:
        """Questions whose given steps shrank, in pick order (a fresh int64 array)."""
    @property
    def given_steps(self) -> npt.NDArray[np.int64]:
        """c_i(t) of every question after the stage (a fresh int64 array)."""
    @property
    def budget_increase(self) -> float:
        """D(t) - H(t-1), the stage's knapsack budget (<= 0: skipped)."""
    @property
    def difficulty_added(self) -> float:
        """H(t) - H(t-1), the difficulty of the steps that moved."""
    @property
    def value(self) -> float:
        """F of the selected set."""
    @property
    def evaluations(self) -> int:
        """Marginal-gain evaluations of the solver."""
    @property
    def budget(self) -> float:
        """D(t), the difficulty budget of Eq. 10."""
    @property
    def written(self) -> float:
        """H(t), the difficulty of the steps the student writes (Eq. 9)."""
    @property
    def skipped(self) -> bool:
        """Whether the stage was skipped because D(t) <= H(t-1)."""
    @property
    def eligible(self) -> int:
        """Questions that could move a step at this stage (given steps > 0 before it)."""
    @property
    def bound(self) -> bool:
        """Whether the budget held some eligible question back (selected < eligible)."""

@final
class Curriculum:
    """The KPOD schedule's state c_i(t); see :class:`kpod.schedule.Curriculum`."""

    def __new__(
        cls,
        step_difficulty: npt.NDArray[np.float64],
        step_offsets: npt.NDArray[np.int64],
        clusters: npt.NDArray[np.int64],
        *,
        stages: int,
        p: float,
        c0: float,
        beta: float,
        delta_steps: int,
        eps: float,
        algorithm: str,
    ) -> Curriculum: ...
    def advance(self) -> StageResult:
        """Run the next stage."""
    def rescore(self, step_difficulty: npt.NDArray[np.float64]) -> None:
        """Replace the step difficulties, keeping the stage and the given steps."""
    def budget(self, t: int) -> float:
        """D(t)."""
    @property
    def stage(self) -> int: ...
    @property
    def written(self) -> float: ...
    @property
    def total_difficulty(self) -> float: ...
    @property
    def n_questions(self) -> int: ...
    @property
    def given_steps(self) -> npt.NDArray[np.int64]: ...
    def state_dict(self) -> dict[str, Any]:
        """{stage, given_steps (int64 array), written, total_difficulty}."""
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
