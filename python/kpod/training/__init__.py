"""KPOD progressive distillation on the transformers Trainer (kpod-method sections 3, 4, 6, 7).

- :func:`stage_example` / :class:`StageDataset`: prepared examples cut at a stage.
- :func:`weighted_token_loss`: Eq. 15 plus the unweighted answer NLL.
- :class:`KpodCollator`: pads input ids, labels and token weights together.
- :func:`step_difficulties` / :func:`add_step_difficulty`: Eq. 8.
- :class:`KpodConfig`, :class:`KpodTrainer`, :func:`train_kpod`.

Submodules are imported on first use, so ``kpod.training.stage_example`` does
not pull in transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ABLATIONS",
    "CurriculumSchedule",
    "KpodCollator",
    "KpodConfig",
    "KpodTrainer",
    "StageDataset",
    "add_step_difficulty",
    "load_config",
    "stage_example",
    "step_difficulties",
    "train_kpod",
    "weighted_token_loss",
]

_WHERE = {
    "ABLATIONS": "config",
    "KpodConfig": "config",
    "load_config": "config",
    "KpodCollator": "collator",
    "StageDataset": "stages",
    "stage_example": "stages",
    "weighted_token_loss": "loss",
    "add_step_difficulty": "difficulty",
    "step_difficulties": "difficulty",
    "CurriculumSchedule": "curriculum",
    "KpodTrainer": "trainer",
    "train_kpod": "trainer",
}

if TYPE_CHECKING:  # pragma: no cover
    from kpod.training.collator import KpodCollator
    from kpod.training.config import ABLATIONS, KpodConfig, load_config
    from kpod.training.curriculum import CurriculumSchedule
    from kpod.training.difficulty import add_step_difficulty, step_difficulties
    from kpod.training.loss import weighted_token_loss
    from kpod.training.stages import StageDataset, stage_example
    from kpod.training.trainer import KpodTrainer, train_kpod


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"kpod.training.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'kpod.training' has no attribute {name!r}")
