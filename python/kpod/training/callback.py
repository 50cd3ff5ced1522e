"""The callback that moves the curriculum one stage per epoch and checkpoints it.

The schedule's state goes into every checkpoint's ``trainer_state.json``
through the Trainer's stateful-callback mechanism (``ExportableState``), as
JSON with numpy arrays packed into compact base64 blobs, and comes back on
``resume_from_checkpoint``. The Trainer re-creates a stateful callback from
that state when it resumes; :meth:`KpodTrainer._load_callback_state
<kpod.training.trainer.KpodTrainer>` then hands the new callback its trainer.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

if TYPE_CHECKING:
    from kpod.training.trainer import KpodTrainer

__all__ = ["KpodScheduleCallback"]


def _encode(obj: Any) -> Any:
    """JSON-safe form of a state dict: numpy arrays become compact base64 blobs."""
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {
            "__ndarray__": base64.b64encode(zlib.compress(arr.tobytes())).decode("ascii"),
            "dtype": arr.dtype.str,
            "shape": list(arr.shape),
        }
    if isinstance(obj, Mapping):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return {"__bytes__": base64.b64encode(obj).decode("ascii")}
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        if "__ndarray__" in obj:
            raw = zlib.decompress(base64.b64decode(obj["__ndarray__"]))
            return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
        if "__bytes__" in obj:
            return base64.b64decode(obj["__bytes__"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


class KpodScheduleCallback(TrainerCallback, ExportableState):
    """Moves the curriculum one stage per epoch and checkpoints it with the trainer state."""

    def __init__(self, trainer: KpodTrainer | None = None, saved: Any = None) -> None:
        self.trainer = trainer
        self.saved = saved

    def _owner(self) -> KpodTrainer:
        if self.trainer is None:
            raise RuntimeError(
                "KpodScheduleCallback is not attached to a KpodTrainer; KpodTrainer adds it "
                "(and re-attaches the one the Trainer re-creates on resume)"
            )
        return self.trainer

    def state(self) -> dict[str, Any]:
        payload = (
            self.saved if self.trainer is None else _encode(self.trainer.schedule.state_dict())
        )
        return {"args": {}, "attributes": {"saved": payload}}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trainer = self._owner()
        if state.global_step == 0:
            trainer.schedule.reset()
            trainer._rewrite_stage_log()
            return
        stored = (state.stateful_callbacks or {}).get(type(self).__name__)
        if isinstance(stored, list):
            stored = stored[-1] if stored else None
        payload = (stored or {}).get("attributes", {}).get("saved")
        if payload is None:
            raise RuntimeError(
                "the checkpoint has no KPOD schedule in trainer_state.json; it was not written "
                "by KpodTrainer, so the curriculum cannot be resumed"
            )
        trainer.schedule.load_state_dict(_decode(payload))
        trainer.stage_dataset.set_given_steps(trainer.schedule.given_steps)
        trainer._rewrite_stage_log()

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trainer = self._owner()
        epoch = math.floor(state.epoch + 1e-9)
        trainer.enter_stage(epoch + 1)
