"""Training the weighting module on top of ``transformers.Trainer``.

Mixed precision, checkpoints, resumption and multi-GPU come from the Trainer;
kpod only adds a config dataclass, a collator for prepared examples and a
``compute_loss`` that logs the two loss terms.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from kpod.precision import apply_to_training_args
from kpod.weighting.module import (
    PAD,
    KeypointWeighting,
    ModuleConfig,
    check_example,
    tokenizer_fingerprint,
    truncate_layers,
)


@dataclass
class WeightingConfig(TrainingArguments):
    """Options of ``kpod weights train`` (every TrainingArguments field works too)."""

    student: str = field(
        default="smollm2-135m",
        metadata={
            "help": "Student model (path or alias) whose tokenizer and frozen input "
            "embeddings the weight generator uses."
        },
    )
    predictor: str | None = field(
        default=None,
        metadata={
            "help": "Answer predictor: any causal LM with the student's tokenizer. "
            "Default: the student itself ([kpod decision], the paper used FlanT5-Large)."
        },
    )
    predictor_layers: int | None = field(
        default=None,
        metadata={
            "help": "Keep only the first L decoder layers of the answer predictor "
            "(cheaper; None = all layers)."
        },
    )
    predictor_warmup_steps: int = field(
        default=0,
        metadata={
            "help": "First train only the answer predictor for this many optimizer steps "
            "with random masks at random rates (L_p alone), so that masking a token has a measurable "
            "cost before mask learning starts. Needed when predictor_layers truncates it."
        },
    )
    predictor_lr_scale: float = field(
        default=0.1,
        metadata={
            "help": "The answer predictor's learning rate is learning_rate times this "
            "(a pretrained LM needs a smaller step than the freshly initialised generator)."
        },
    )
    freeze_predictor: bool = field(
        default=True,
        metadata={
            "help": "Freeze the answer predictor during mask learning (after any warm-up); "
            "only the weight generator and the mask embedding learn. A jointly trained "
            "predictor can learn to ignore the rationale, so every token gets dropped "
            "(seen on the synthetic task); set False to fine-tune it jointly anyway."
        },
    )
    alpha: float = field(
        default=0.5,
        metadata={
            "help": "Weight of the mask loss L_m in L_k = L_p + alpha * L_m (Eq. 7). "
            "0.5 in the paper's text; its sensitivity figure peaks at 0.7."
        },
    )
    tau: float = field(default=1.0, metadata={"help": "Gumbel-softmax temperature (Eq. 4)."})
    max_prefixes: int | None = field(
        default=None,
        metadata={
            "help": "Cap on the rationale prefixes per example in L_p (Eq. 5); evenly "
            "spaced step boundaries, always including the full rationale. None = all."
        },
    )
    hidden_size: int = field(
        default=256, metadata={"help": "Width of the attention layer and MLP."}
    )
    num_heads: int = field(default=4, metadata={"help": "Attention heads of the weight generator."})
    init_keep: float = field(
        default=0.5, metadata={"help": "Initial keep probability w of every token (MLP bias)."}
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Skip training examples longer than this many tokens (reported)."},
    )
    resume: bool = field(
        default=True,
        metadata={"help": "Resume from the last checkpoint in output_dir if there is one."},
    )
    # TrainingArguments defaults that suit this module.
    output_dir: str | None = field(default="runs/weighting", metadata={"help": "Output folder."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate."})
    num_train_epochs: float = field(default=3.0, metadata={"help": "Training epochs."})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "Examples per batch."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})
    save_steps: float = field(default=50, metadata={"help": "Checkpoint every N steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: the collator reads step_ids."}
    )
    report_to: Any = field(default="none", metadata={"help": "Logging integrations."})
    bf16: bool | None = field(  # type: ignore[assignment]
        default=None,
        metadata={
            "help": "bfloat16 mixed precision: true, false or 'auto' (None = auto, the default): "
            "bf16 where the device computes it natively, float32 elsewhere (kpod.precision)."
        },
    )

    def __post_init__(self) -> None:
        apply_to_training_args(self, "the weighting module")
        super().__post_init__()


@dataclass
class WeightingCollator:
    """Pads prepared examples (input_ids, step_ids, answer_mask) on the right."""

    pad_token_id: int
    max_length: int | None = None

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        for i, f in enumerate(features):
            name = repr(f.get("id", f"#{i} of the batch"))
            if len(f["input_ids"]) != len(f["step_ids"]):
                raise ValueError(
                    f"example {name}: input_ids has {len(f['input_ids'])} tokens but step_ids has "
                    f"{len(f['step_ids'])}; re-run `kpod data prepare`"
                )
            check_example(f["step_ids"], f["answer_mask"], name)
        length = max(len(f["input_ids"]) for f in features)
        n = len(features)
        input_ids = torch.full((n, length), self.pad_token_id, dtype=torch.long)
        step_ids = torch.full((n, length), PAD, dtype=torch.long)
        answer_mask = torch.zeros((n, length), dtype=torch.long)
        attention = torch.zeros((n, length), dtype=torch.long)
        for i, f in enumerate(features):
            t = len(f["input_ids"])
            input_ids[i, :t] = torch.as_tensor(f["input_ids"])
            step_ids[i, :t] = torch.as_tensor(f["step_ids"])
            answer_mask[i, :t] = torch.as_tensor(f["answer_mask"])
            attention[i, :t] = 1
        return {
            "input_ids": input_ids,
            "step_ids": step_ids,
            "answer_mask": answer_mask,
            "attention_mask": attention,
        }


class WeightingTrainer(Trainer):
    """Trainer whose loss is Eq. 7; logs L_p, L_m and the mean weight."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parts: dict[str, float] = {}
        self._n_parts = 0

    args: WeightingConfig

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        module = self.accelerator.unwrap_model(model)
        warm = model.training and self.state.global_step < self.args.predictor_warmup_steps
        module.warming_up = warm
        if model.training and not warm and self.args.freeze_predictor:
            if any(p.requires_grad for p in module.predictor.parameters()):
                module.predictor.requires_grad_(False)
        out = model(**inputs)
        if model.training:
            for key in ("prefix_loss", "mask_loss", "mean_weight"):
                self._parts[key] = self._parts.get(key, 0.0) + float(out[key])
            self._n_parts += 1
        return (out["loss"], out) if return_outputs else out["loss"]

    def create_optimizer(self, model: Any = None) -> Any:
        # Two parameter groups: the pretrained predictor learns more slowly.
        if self.optimizer is None:
            module = self.accelerator.unwrap_model(self.model)
            pred = {id(p) for p in module.predictor.parameters()} if module.predictor else set()
            params = [p for p in module.parameters() if p.requires_grad or id(p) in pred]
            own = [p for p in params if id(p) not in pred]
            theirs = [p for p in params if id(p) in pred and p.requires_grad]
            lr = self.args.learning_rate
            groups = [{"params": own, "lr": lr}]
            if theirs:
                groups.append({"params": theirs, "lr": lr * self.args.predictor_lr_scale})
            self.optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=self.args.weight_decay)
        return self.optimizer

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self._n_parts and "loss" in logs:
            for key, total in self._parts.items():
                logs[key] = round(total / self._n_parts, 4)
            self._parts, self._n_parts = {}, 0
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # The default saver cannot write shared (tied) tensors of a plain
        # nn.Module; save_model de-duplicates them and Trainer's resume path
        # loads with strict=False. The kpod module files go alongside.
        from safetensors.torch import save_model

        out = output_dir or self.args.output_dir
        assert out is not None
        os.makedirs(out, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        save_model(model, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        model.save(out, tokenizer=self.processing_class)
        torch.save(self.args, os.path.join(out, "training_args.bin"))


def build_module(
    config: WeightingConfig,
    tokenizer: Any,
    *,
    student: Any = None,
    predictor: Any = None,
) -> KeypointWeighting:
    """Assemble a fresh module from loaded (or named) student and predictor models."""
    from kpod.models import load_model

    if student is None:
        student = load_model(config.student)
    embeddings = student.get_input_embeddings().weight.detach()
    if predictor is None:
        predictor = student if config.predictor is None else load_model(config.predictor)
    if config.predictor_layers is not None:
        truncate_layers(predictor, config.predictor_layers)
    if config.freeze_predictor and config.predictor_warmup_steps == 0:
        predictor.requires_grad_(False)
    mcfg = ModuleConfig(
        vocab_size=embeddings.shape[0],
        embed_dim=embeddings.shape[1],
        hidden_size=config.hidden_size,
        num_heads=config.num_heads,
        tau=config.tau,
        init_keep=config.init_keep,
        max_prefixes=config.max_prefixes,
        student=str(config.student),
        predictor=str(config.predictor or config.student),
        predictor_layers=config.predictor_layers,
        tokenizer_fingerprint=tokenizer_fingerprint(tokenizer),
    )
    if len(tokenizer) > mcfg.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the student's embedding matrix only "
            f"{mcfg.vocab_size}; they do not belong together"
        )
    return KeypointWeighting(mcfg, embeddings, predictor, alpha=config.alpha)


def _filter_length(dataset: Any, max_length: int | None) -> Any:
    if max_length is None:
        return dataset
    before = len(dataset)
    kept = dataset.filter(lambda ex: len(ex["input_ids"]) <= max_length)
    if len(kept) < before:
        print(
            f"kpod weights: skipped {before - len(kept)} of {before} examples longer than "
            f"{max_length} tokens",
            flush=True,
        )
    if len(kept) == 0:
        raise ValueError(f"no training example has at most max_length={max_length} tokens")
    return kept


def train_weighting(
    dataset: Any,
    config: WeightingConfig,
    tokenizer: Any,
    *,
    student: Any = None,
    predictor: Any = None,
    eval_dataset: Any = None,
) -> KeypointWeighting:
    """Train the module (Eq. 7) and save it to ``config.output_dir``.

    ``dataset`` holds prepared examples (docs/architecture.md). ``student`` and
    ``predictor`` may be passed as loaded models (tests do); otherwise they are
    loaded from ``config.student`` / ``config.predictor``.
    """
    missing = {"input_ids", "step_ids", "answer_mask"} - set(dataset.column_names)
    if missing:
        raise ValueError(
            f"the dataset lacks the prepared-example columns {sorted(missing)}; "
            "prepare it with `kpod data prepare`"
        )
    for i, row in enumerate(
        dataset.select_columns(
            [c for c in ("id", "step_ids", "answer_mask") if c in dataset.column_names]
        )
    ):
        check_example(row["step_ids"], row["answer_mask"], repr(row.get("id", f"#{i}")))
    dataset = _filter_length(dataset, config.max_length)
    from transformers import set_seed

    set_seed(config.seed)  # the generator's initialisation follows config.seed
    module = build_module(config, tokenizer, student=student, predictor=predictor)
    trainer = WeightingTrainer(
        model=module,
        args=config,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        data_collator=WeightingCollator(pad_token_id=int(tokenizer.pad_token_id or 0)),
        processing_class=tokenizer,
    )
    last = None
    if config.resume and config.output_dir and Path(config.output_dir).is_dir():
        last = get_last_checkpoint(config.output_dir)
        if last:
            print(f"kpod weights: resuming from {last}", flush=True)
    trainer.train(resume_from_checkpoint=last)
    trainer.save_state()
    module.eval()
    assert config.output_dir is not None
    module.save(config.output_dir, tokenizer=tokenizer)
    (Path(config.output_dir) / "train_config.json").write_text(
        config.to_json_string(), encoding="utf-8"
    )
    return module


def config_fields() -> list[str]:
    """Names of the kpod-specific WeightingConfig fields (for the CLI and docs)."""
    base = {f.name for f in dataclasses.fields(TrainingArguments)}
    return [f.name for f in dataclasses.fields(WeightingConfig) if f.name not in base]
