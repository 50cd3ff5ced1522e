"""``KpodTrainer``: progressive, keypoint-weighted distillation on ``transformers.Trainer``.

One curriculum stage per epoch. Before epoch ``e`` a callback asks the native
scheduler (``kpod.Curriculum.advance()``) for stage ``e + 1`` and switches the
training dataset to that stage's given-step counts: the given steps join the
input without loss, the remaining steps and the answer are the target. The
dataset keeps its length across stages, so the Trainer's sampler, step counts
and resume arithmetic are untouched; ``Trainer.train`` is not overridden.

The schedule (curriculum state, stage counter, per-stage history;
:mod:`kpod.training.curriculum`) is written into every checkpoint's
``trainer_state.json`` by the callback (:mod:`kpod.training.callback`) through
the Trainer's own stateful-callback mechanism and restored on
``resume_from_checkpoint``, so a resumed run continues with the identical
schedule and data order.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from kpod.data.prepared import has_column, optional_column
from kpod.models import resolve_kind, tied_parameter_names
from kpod.schedule import StageResult
from kpod.training.callback import KpodScheduleCallback
from kpod.training.collator import KpodCollator
from kpod.training.config import KpodConfig
from kpod.training.curriculum import CurriculumSchedule, slack_budget_warning
from kpod.training.difficulty import step_difficulties
from kpod.training.loss import weighted_token_loss
from kpod.training.stages import StageDataset

__all__ = ["KpodTrainer", "low_weight_warning", "train_kpod"]

STAGES_FILE = "kpod_stages.jsonl"


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

    def _load_callback_state(self) -> None:
        # On resume the Trainer re-creates stateful callbacks from trainer_state.json
        # (constructor arguments only); the new schedule callback gets its trainer here.
        super()._load_callback_state()
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, KpodScheduleCallback):
                callback.trainer = self

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

    def _rewrite_stage_log(self) -> None:
        """``kpod_stages.jsonl`` from the schedule's history (a fresh or a resumed run)."""
        path = self._stage_log_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
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
