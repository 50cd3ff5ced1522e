"""Native scheduler core of kpod (Rust, PyO3). Use :mod:`kpod.schedule` instead.

Every function takes contiguous 1-D ``float64`` / ``int64`` arrays (the
facade coerces once), releases the GIL while it works and raises
``ValueError`` for invalid input.
"""

from typing import final

import numpy as np
import numpy.typing as npt

__all__ = ["Curriculum", "__version__", "select"]

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
    def advance(
        self,
    ) -> tuple[
        int,
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        float,
        float,
        float,
        int,
        float,
        float,
        bool,
    ]:
        """Run the next stage: (stage, selected, given_steps, budget_increase,
        difficulty_added, value, evaluations, budget, written, skipped)."""
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
    def get_state(self) -> tuple[int, npt.NDArray[np.int64], float, float]:
        """(stage, given_steps, written, total_difficulty)."""
    def set_state(
        self,
        stage: int,
        given_steps: npt.NDArray[np.int64],
        written: float,
        total: float,
    ) -> None:
        """Restore a get_state() tuple."""
