"""``KpodTrainer``: progressive, keypoint-weighted distillation on ``transformers.Trainer``.

One curriculum stage per epoch. Before epoch ``e`` a callback asks the native
scheduler (``kpod.Curriculum.advance()``) for stage ``e + 1`` and switches the
training dataset to that stage's given-step counts: the given steps join the
input without loss, the remaining steps and the answer are the target. The
dataset keeps its length across stages, so the Trainer's sampler, step counts
and resume arithmetic are untouched; ``Trainer.train`` is not overridden.

The schedule (curriculum state, stage counter, per-stage history) is written
into every checkpoint's ``trainer_state.json`` through the Trainer's own
stateful-callback mechanism and restored on ``resume_from_checkpoint``, so a
resumed run continues with the identical schedule and data order.
"""

from __future__ import annotations

import base64
import json
import math
import os
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState

from kpod.data.prepared import has_column, optional_column
from kpod.models import resolve_kind
from kpod.schedule import StageResult, budget_never_bound
from kpod.training.collator import KpodCollator
from kpod.training.config import KpodConfig
from kpod.training.difficulty import step_difficulties
from kpod.training.loss import weighted_token_loss
from kpod.training.stages import StageDataset

__all__ = [
    "CurriculumSchedule",
    "KpodScheduleCallback",
    "KpodTrainer",
    "slack_budget_warning",
    "train_kpod",
]

STAGES_FILE = "kpod_stages.jsonl"


# --------------------------------------------------------------------------- state encoding
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


# --------------------------------------------------------------------------- schedule
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


# --------------------------------------------------------------------------- callback
class KpodScheduleCallback(TrainerCallback, ExportableState):
    """Moves the curriculum one stage per epoch and checkpoints it with the trainer state."""

    def __init__(self, trainer: KpodTrainer | None = None, saved: Any = None) -> None:
        self.trainer = trainer
        self.saved = saved

    def _owner(self, kwargs: Mapping[str, Any]) -> KpodTrainer:
        if self.trainer is None:
            # Re-created by Trainer._load_callback_state: find the trainer through the data.
            dl = kwargs.get("train_dataloader")
            owner = getattr(getattr(dl, "dataset", None), "kpod_trainer", None)
            if owner is None:
                raise RuntimeError("KpodScheduleCallback is not attached to a KpodTrainer")
            self.trainer = owner
        return self.trainer

    def state(self) -> dict[str, Any]:
        payload = (
            self.saved if self.trainer is None else _encode(self.trainer.schedule.state_dict())
        )
        return {"args": {}, "attributes": {"saved": payload}}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trainer = self._owner(kwargs)
        if state.global_step == 0:
            trainer.schedule.reset()
            trainer._write_stage_log(truncate=True)
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
        trainer._write_stage_log(truncate=True)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trainer = self._owner(kwargs)
        epoch = math.floor(state.epoch + 1e-9)
        trainer.enter_stage(epoch + 1)


# --------------------------------------------------------------------------- trainer
class KpodTrainer(Trainer):
    """``transformers.Trainer`` for KPOD: stage datasets, weighted loss, resumable curriculum.

    Args:
        model: the student (causal or seq2seq); wrapped with LoRA when ``args.use_lora``.
        args: a :class:`KpodConfig`.
        train_dataset: prepared examples (``input_ids``, ``step_ids``, ``n_steps``,
            ``token_weights``, ``step_difficulty``, ``cluster``; see
            docs/architecture.md). Columns an ablation makes unnecessary may be absent.
        processing_class: the student's tokenizer (pad/EOS ids).
        **kwargs: passed to ``transformers.Trainer`` (eval_dataset, callbacks, ...).
    """

    def __init__(
        self,
        model: Any,
        args: KpodConfig,
        train_dataset: Any,
        processing_class: Any = None,
        data_collator: Any = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, KpodConfig):
            raise TypeError(f"KpodTrainer needs a KpodConfig, got {type(args).__name__}")
        if train_dataset is None:
            raise ValueError("KpodTrainer needs a train_dataset of prepared examples")
        self.kind = resolve_kind(model, args.kind)
        if args.use_lora:
            model = _with_lora(model, args, self.kind)
        cfg = _base_config(model)
        eos = cfg.eos_token_id if processing_class is None else processing_class.eos_token_id
        pad = cfg.pad_token_id if processing_class is None else processing_class.pad_token_id
        if pad is None:
            pad = eos
        if pad is None:
            raise ValueError("neither the tokenizer nor the model config defines a pad or EOS id")
        self.prepared = train_dataset
        self.stage_dataset = StageDataset(
            train_dataset,
            self.kind,
            eos_token_id=eos,
            equal_token_weights=args.equal_token_weights,
            token_weight_norm=args.token_weight_norm,
        )
        self.stage_dataset.kpod_trainer = self
        low = low_weight_warning(self.stage_dataset.mean_rationale_weight, args.token_weight_norm)
        if low:
            warnings.warn(low, stacklevel=2)
        self._pad_id = int(pad)
        diffs = optional_column(train_dataset, "step_difficulty")
        clusters: Any = optional_column(train_dataset, "cluster")
        if clusters is None and not args.no_progression and args.effective_beta > 0:
            clusters = _compute_clusters(model, train_dataset, args.n_clusters, args.seed)
        self.schedule = CurriculumSchedule(self.stage_dataset.n_steps, diffs, clusters, args)
        self.stage_dataset.set_given_steps(self.schedule.given_steps)
        slack = slack_budget_warning(
            self.schedule.preview(), stages=args.num_stages, delta_steps=args.delta_steps
        )
        if slack:
            warnings.warn(slack, stacklevel=2)
        if kwargs.get("eval_dataset") is not None:
            kwargs["eval_dataset"] = _eval_stage_data(kwargs["eval_dataset"], self.kind, eos, args)
        super().__init__(
            model=model,
            args=args,
            train_dataset=self.stage_dataset,
            data_collator=data_collator or KpodCollator(pad_token_id=int(pad)),
            processing_class=processing_class,
            **kwargs,
        )
        # Our loss takes num_items_in_batch, so let the Trainer count targets over
        # gradient-accumulation micro-batches (and devices) for the normalisation.
        self.model_accepts_loss_kwargs = True
        self.add_callback(KpodScheduleCallback(self))

    # ---------------------------------------------------------------- stages
    def enter_stage(self, stage: int) -> None:
        """Bring the schedule to ``stage`` (re-scoring if due) and switch the training data."""
        args: KpodConfig = self.args  # type: ignore[assignment]
        while self.schedule.stage < stage:
            nxt = self.schedule.stage + 1
            if (
                args.rescore_every > 0
                and self.schedule.progressive
                and nxt > 1
                and nxt <= args.num_stages
                and (nxt - 1) % args.rescore_every == 0
            ):
                self.schedule.rescore(self._rescore())
            record = self.schedule.advance()
            self._check_ranks_agree()
            self._append_stage_log(record)
            logs = {
                "kpod_stage": float(record.stage),
                "kpod_selected": float(len(record.selected)),
                "kpod_written_difficulty": record.written,
            }
            self.log(logs)
        self.stage_dataset.set_given_steps(self.schedule.given_steps)

    def _rescore(self) -> list[np.ndarray]:
        """Step difficulties under the current student, shard per rank then gathered."""
        args: KpodConfig = self.args  # type: ignore[assignment]
        world, rank = _dist_world_rank()
        n = len(self.prepared)
        lo, hi = rank * n // world, (rank + 1) * n // world
        rows = [self.prepared[i] for i in range(lo, hi)]
        model = self.accelerator.unwrap_model(self.model)
        cfg = _base_config(model)
        diffs = step_difficulties(
            model,
            rows,
            kind=self.kind,
            eos_token_id=cfg.eos_token_id,
            pad_token_id=self._pad_id,
            batch_size=args.difficulty_batch_size,
            uniform=args.uniform_difficulty,
            show_progress=self.is_local_process_zero(),
        )
        if world == 1:
            return diffs
        parts: list[Any] = [None] * world
        torch.distributed.all_gather_object(parts, diffs)
        return [d for part in parts for d in part]

    def _check_ranks_agree(self) -> None:
        world, _ = _dist_world_rank()
        if world == 1:
            return
        prints: list[Any] = [None] * world
        torch.distributed.all_gather_object(prints, self.schedule.fingerprint())
        if len(set(prints)) != 1:
            raise RuntimeError(
                f"ranks disagree on the stage-{self.schedule.stage} schedule (fingerprints "
                f"{prints}); every rank must load the same training data and config"
            )

    def _stage_log_path(self) -> Path | None:
        if not self.args.output_dir or not self.is_world_process_zero():
            return None
        return Path(self.args.output_dir) / STAGES_FILE

    def _write_stage_log(self, truncate: bool) -> None:
        path = self._stage_log_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w" if truncate else "a", encoding="utf-8") as fh:
            for rec in self.schedule.history:
                fh.write(json.dumps(rec.to_dict()) + "\n")

    def _append_stage_log(self, record: StageResult) -> None:
        path = self._stage_log_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record.to_dict()) + "\n")

    # ---------------------------------------------------------------- loss
    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        weights = inputs.pop("token_weights", None)
        if self.kind == "seq2seq":
            base = _base_model(self.accelerator.unwrap_model(model))
            inputs["decoder_input_ids"] = base.prepare_decoder_input_ids_from_labels(labels=labels)
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        loss = weighted_token_loss(
            logits,
            labels,
            weights,
            shift=self.kind == "causal",
            num_items_in_batch=num_items_in_batch,
        )
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # num_items_in_batch counts every device's targets while DDP averages the
            # gradients over devices: undo that average (as Trainer.compute_loss does).
            loss = loss * self.accelerator.num_processes
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        return (loss, outputs) if return_outputs else loss

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        # A student whose output head is tied to its input embeddings (SmolLM2) saves
        # the shared tensor once, so a resumed checkpoint "misses" lm_head.weight and
        # the Trainer warns as if weights were lost. Those keys are re-tied here;
        # any other missing or unexpected key still warns.
        tied = tied_parameter_names(self.accelerator.unwrap_model(self.model))
        missing = [k for k in load_result.missing_keys if k not in tied]
        if len(missing) < len(load_result.missing_keys):
            self.accelerator.unwrap_model(self.model).tie_weights()
        load_result = type(load_result)(missing, load_result.unexpected_keys)
        super()._issue_warnings_after_load(load_result)


# --------------------------------------------------------------------------- helpers
LOW_MEAN_WEIGHT = 0.1


def tied_parameter_names(model: Any) -> set[str]:
    """Names of parameters that share their tensor with an earlier-named parameter."""
    seen: set[int] = set()
    tied: set[str] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            tied.add(name)
        seen.add(id(param))
    return tied


def low_weight_warning(mean_weight: float | None, token_weight_norm: str) -> str | None:
    """The warning for raw token weights whose rationale mean is below 0.1.

    Such a weighting module has collapsed (docs/weighting.md): with raw weights
    (Eq. 15) the rationale then barely enters the loss. ``None`` when there is
    nothing to say.
    """
    if mean_weight is None or token_weight_norm != "none" or mean_weight >= LOW_MEAN_WEIGHT:
        return None
    return (
        f"the token weights average {mean_weight:.3g} over rationale tokens: the weighting "
        "module has collapsed, and with raw weights (Eq. 15) the rationale barely enters the "
        "distillation loss. Set token_weight_norm='mean' to keep the weights' ranking at the "
        "loss scale of plain CoT, or retrain the module with a lower alpha (docs/weighting.md)."
    )


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


def _eval_stage_data(data: Any, kind: str, eos: int | None, args: KpodConfig) -> Any:
    """Prepared eval examples as stage examples with the full rationale as target."""
    if isinstance(data, Mapping):
        return {name: _eval_stage_data(d, kind, eos, args) for name, d in data.items()}
    if isinstance(data, StageDataset) or not has_column(data, "step_ids"):
        return data  # already stage examples (input_ids/labels/token_weights)
    equal = args.equal_token_weights or not has_column(data, "token_weights")
    ds = StageDataset(
        data,
        kind,
        eos_token_id=eos,
        equal_token_weights=equal,
        token_weight_norm=args.token_weight_norm,
    )
    ds.set_given_steps(np.zeros(len(ds), dtype=np.int64))
    return ds


def _dist_world_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def _base_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _base_config(model: Any) -> Any:
    return _base_model(model).config


def _compute_clusters(model: Any, data: Any, k: int, seed: int) -> np.ndarray:
    """K-means question clusters from the student's input embeddings (kpod.data.clusters)."""
    from kpod.data.clusters import cluster_questions

    return np.asarray(cluster_questions(data, model=model, k=k, seed=seed), dtype=np.int64)


def _with_lora(model: Any, args: KpodConfig, kind: str) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(model, PeftModel):
        return model
    targets: Any = args.lora_target_modules
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    lora = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM" if kind == "causal" else "SEQ_2_SEQ_LM",
    )
    return get_peft_model(model, lora)


def train_kpod(
    model: Any,
    tokenizer: Any,
    dataset: Any,
    config: KpodConfig,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    eval_dataset: Any = None,
    resume_from_checkpoint: str | bool | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> KpodTrainer:
    """Train ``model`` on prepared ``dataset`` with KPOD and save the result.

    When ``dataset`` has no ``step_difficulty`` column and the run is
    progressive, the difficulties are scored first with ``model`` as given (the
    pretrained student, Eq. 8; ``config.uniform_difficulty`` honoured). Resumes
    from ``resume_from_checkpoint`` (a checkpoint path, or ``True`` for the last
    one in ``output_dir``). Saves the final model, tokenizer and
    ``kpod_stages.jsonl`` (one line per stage: selected questions, given steps,
    written difficulty) to ``output_dir``. Returns the trainer (``.model``,
    ``.schedule.history``, ``.state.log_history``).
    """
    if output_dir is not None:
        config.output_dir = str(output_dir)
    if not config.output_dir:
        raise ValueError("train_kpod needs an output_dir (argument or config.output_dir)")
    if not config.no_progression and not has_column(dataset, "step_difficulty"):
        from kpod.training.difficulty import add_step_difficulty

        dataset = add_step_difficulty(
            dataset,
            model,
            kind=config.kind,
            eos_token_id=getattr(tokenizer, "eos_token_id", None),
            pad_token_id=getattr(tokenizer, "pad_token_id", None),
            batch_size=config.difficulty_batch_size,
            uniform=config.uniform_difficulty,
        )
    trainer = KpodTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        eval_dataset=eval_dataset,
        callbacks=callbacks,
    )
    if resume_from_checkpoint is True and not _has_checkpoint(config.output_dir):
        resume_from_checkpoint = None
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.save_model(config.output_dir)
    if trainer.is_world_process_zero() and tokenizer is not None:
        tokenizer.save_pretrained(config.output_dir)
    return trainer


def _has_checkpoint(output_dir: str) -> bool:
    from transformers.trainer_utils import get_last_checkpoint

    return os.path.isdir(output_dir) and get_last_checkpoint(output_dir) is not None
