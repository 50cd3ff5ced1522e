"""The curriculum the trainer follows: every question's given-step count, stage by stage.

:class:`CurriculumSchedule` wraps the native scheduler (``kpod.Curriculum``)
for KPOD, or gives every question its whole rationale under
``no_progression``; it keeps the stage records (``kpod.StageResult``) and its
state as a dict for checkpoints. Needs numpy and the native core only (no
torch); the trainer, the callback and ``kpod run``'s schedule preview use it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kpod.schedule import StageResult, budget_never_bound

if TYPE_CHECKING:
    from kpod.training.config import KpodConfig

__all__ = ["CurriculumSchedule", "slack_budget_warning"]


class CurriculumSchedule:
    """The given-step counts of every question, stage by stage.

    Wraps ``kpod.Curriculum`` (the native scheduler) for KPOD, or gives every
    question the full rationale (``c_i = 0``) under ``no_progression``. Stage
    ``s`` is reached by ``s`` calls of ``Curriculum.advance()``; stage 0 is the
    initial state ``c_i = max(n_i - delta_s, 0)``.
    """

    def __init__(
        self,
        n_steps: Sequence[int] | np.ndarray,
        step_difficulty: Sequence[Sequence[float] | np.ndarray] | None,
        clusters: Sequence[int] | np.ndarray | None,
        config: KpodConfig,
    ) -> None:
        self.config = config
        self.n_steps = np.asarray(n_steps, dtype=np.int64)
        self.progressive = not config.no_progression
        self.stage = 0
        self.history: list[StageResult] = []
        self.curriculum: Any = None
        if self.progressive:
            if step_difficulty is None:
                raise ValueError(
                    "progressive training needs a 'step_difficulty' column; compute it with "
                    "`kpod difficulty` (kpod.training.add_step_difficulty) or set no_progression"
                )
            self._difficulty = [np.asarray(d, dtype=np.float64) for d in step_difficulty]
            for i, (d, n) in enumerate(zip(self._difficulty, self.n_steps, strict=True)):
                if d.shape != (n,):
                    raise ValueError(
                        f"example {i}: step_difficulty has {d.size} values but n_steps is {n}"
                    )
            self._clusters = (
                np.zeros(len(self.n_steps), dtype=np.int64)
                if clusters is None
                else np.asarray(clusters, dtype=np.int64)
            )
            self.curriculum = self._new_curriculum(self._difficulty)
        self.given_steps = self._initial_given()

    def _new_curriculum(self, difficulty: list[np.ndarray]) -> Any:
        import kpod

        cfg = self.config
        flat = np.concatenate(difficulty) if difficulty else np.zeros(0, dtype=np.float64)
        offsets = np.zeros(len(difficulty) + 1, dtype=np.int64)
        np.cumsum([d.size for d in difficulty], out=offsets[1:])
        return kpod.Curriculum(
            flat,
            offsets,
            self._clusters,
            stages=cfg.num_stages,
            p=cfg.p,
            c0=cfg.c0,
            beta=cfg.effective_beta,
            delta_steps=cfg.delta_steps,
            eps=cfg.eps,
            algorithm=cfg.algorithm,
        )

    def _initial_given(self) -> np.ndarray:
        if not self.progressive:
            return np.zeros_like(self.n_steps)
        return np.maximum(self.n_steps - self.config.delta_steps, 0)

    def reset(self) -> None:
        """Back to stage 0 (a fresh run)."""
        self.stage = 0
        self.history = []
        if self.progressive:
            self.curriculum = self._new_curriculum(self._difficulty)
        self.given_steps = self._initial_given()

    def advance(self) -> StageResult:
        """Run the next stage and return its record (the native core's ``StageResult``)."""
        if self.progressive:
            record = self.curriculum.advance()
        else:
            # No progression: every question writes its whole rationale from stage 1.
            record = StageResult(
                stage=self.stage + 1,
                selected=np.zeros(0, dtype=np.int64),
                given_steps=np.zeros_like(self.n_steps),
                budget_increase=0.0,
                difficulty_added=0.0,
                value=0.0,
                evaluations=0,
                budget=0.0,
                written=0.0,
                skipped=False,
                eligible=0,
                bound=False,
            )
        self.stage = record.stage
        self.given_steps = record.given_steps
        self.history.append(record)
        return record

    def advance_to(self, stage: int) -> list[StageResult]:
        """Advance until ``stage`` (no-op if already there); returns the new records."""
        if stage < self.stage:
            raise RuntimeError(
                f"the schedule is at stage {self.stage} and cannot go back to {stage}; "
                "resume from the checkpoint of that stage instead"
            )
        return [self.advance() for _ in range(stage - self.stage)]

    def preview(self) -> list[StageResult]:
        """The records of stages 1..T from the current difficulties, without touching ``self``.

        Cheap (the native scheduler only); used to warn before training when the
        budget never binds (:func:`slack_budget_warning`).
        """
        if not self.progressive:
            return []
        probe = CurriculumSchedule(self.n_steps, self._difficulty, self._clusters, self.config)
        return probe.advance_to(self.config.num_stages)

    def rescore(self, step_difficulty: Sequence[Any]) -> None:
        """Replace the step difficulties, keeping every question's given-step count and the stage.

        Beyond the paper (``rescore_every``): later stages spend the budget on
        what the current student finds hard.
        """
        if not self.progressive:
            return
        diffs = [np.asarray(d, dtype=np.float64) for d in step_difficulty]
        if len(diffs) != len(self._difficulty):
            raise ValueError("rescore needs one difficulty array per question")
        for i, (d, n) in enumerate(zip(diffs, self.n_steps, strict=True)):
            if d.shape != (n,):
                raise ValueError(f"rescore: example {i} has {d.size} difficulties, n_steps is {n}")
        # Same stage and given steps; B and H follow the new scores (the core's H).
        self.curriculum.rescore(np.concatenate(diffs) if diffs else np.zeros(0))
        self._difficulty = diffs

    def state_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "given_steps": self.given_steps,
            "history": [r.to_dict() for r in self.history],
            "curriculum": None if self.curriculum is None else self.curriculum.state_dict(),
            "difficulty": (
                None
                if not self.progressive
                else np.concatenate(self._difficulty)
                if self._difficulty
                else np.zeros(0)
            ),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stage = int(state["stage"])
        given = np.asarray(state["given_steps"], dtype=np.int64)
        if given.shape != self.n_steps.shape:
            raise ValueError(
                f"the checkpoint's schedule covers {given.size} questions but the training data "
                f"has {self.n_steps.size}; resume with the same training data"
            )
        self.given_steps = given.copy()
        self.history = [StageResult.from_dict(h) for h in state["history"]]
        if self.progressive:
            if state.get("curriculum") is None:
                raise ValueError("the checkpoint was trained without progression (no_progression)")
            flat = np.asarray(state["difficulty"], dtype=np.float64)
            splits = np.cumsum(self.n_steps)[:-1]
            self._difficulty = list(np.split(flat, splits))
            self.curriculum = self._new_curriculum(self._difficulty)
            self.curriculum.load_state_dict(state["curriculum"])

    def fingerprint(self) -> int:
        """CRC of the stage number and given-step counts (cross-rank consistency check)."""
        return zlib.crc32(np.int64(self.stage).tobytes() + self.given_steps.tobytes())


def slack_budget_warning(
    records: Sequence[StageResult], *, stages: int, delta_steps: int
) -> str | None:
    """The warning for a schedule whose difficulty budget binds at no stage 1..T.

    Then every question that can move a step does so at every stage, the
    schedule is fixed by ``delta_steps`` and T alone, and the step difficulties,
    ``beta`` and the clusters have no effect on it (the w.o.-sig-dif and
    w.o.-div ablations train exactly what KPOD trains). ``None`` when some stage
    is bound, or when there is nothing to schedule.
    """
    if not budget_never_bound(records):
        return None
    return (
        f"the difficulty budget D(t) binds at none of the {stages} stages: every "
        f"question that can move {delta_steps} step(s) does so at every stage, so the "
        "step difficulties, beta and the clusters do not change this schedule (w.o.-sig-dif "
        "and w.o.-div would train exactly what KPOD trains). For a budget-driven curriculum "
        "use more stages (T, with more epochs) or a larger delta_steps (docs/training.md)."
    )
