"""Training the weighting module on top of ``transformers.Trainer``.

Mixed precision, checkpoints, resumption and multi-GPU come from the Trainer;
kpod only adds a config dataclass, a collator for prepared examples and a
``compute_loss`` that logs the two loss terms.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, get_last_checkpoint

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
    predictor_adapt: str = field(
        default="cot",
        metadata={
            "help": "How the answer predictor is task-adapted before mask learning: 'cot' "
            "(default) fine-tunes it on the training rationales (question + rationale + answer, "
            "adapt_epochs), then on the answer with random masks (adapt_mask_epochs), so it "
            "reads partial rationales and the mask vector; 'none' uses it as loaded "
            "(docs/weighting.md has the measurements)."
        },
    )
    adapt_epochs: float = field(
        default=1.0, metadata={"help": "Epochs of plain CoT fine-tuning of the predictor."}
    )
    adapt_mask_epochs: float = field(
        default=1.0,
        metadata={
            "help": "Epochs of answer-only training of the predictor under random masks "
            "(a random keep rate per example; every prefix), after the CoT epochs."
        },
    )
    adapt_learning_rate: float = field(
        default=5e-5, metadata={"help": "Learning rate of the predictor's adaptation."}
    )
    predictor_lr_scale: float = field(
        default=0.1,
        metadata={
            "help": "During mask learning a trainable predictor (freeze_predictor=False) learns "
            "at learning_rate times this."
        },
    )
    freeze_predictor: bool = field(
        default=True,
        metadata={
            "help": "Freeze the (adapted) answer predictor during mask learning; only the weight "
            "generator and the mask vector learn. False trains it jointly (the paper's theta^w), "
            "fully or through LoRA (predictor_lora_r)."
        },
    )
    predictor_lora_r: int = field(
        default=0,
        metadata={
            "help": "With freeze_predictor=False: LoRA rank of the adapters (peft) through which "
            "the predictor trains jointly; 0 trains all its weights."
        },
    )
    target_keep: float | None = field(
        default=0.5,
        metadata={
            "help": "Kept fraction of rationale tokens that mask learning converges to: alpha "
            "follows a dual (Lagrangian) update, alpha += dual_lr * (kept - target_keep). "
            "None keeps alpha fixed (the paper's setting, alpha = 0.5)."
        },
    )
    dual_lr: float = field(
        default=0.1, metadata={"help": "Step size of alpha's dual update (target_keep)."}
    )
    keep_penalty: float = field(
        default=4.0,
        metadata={
            "help": "With target_keep: rho of the augmented Lagrangian's quadratic term "
            "rho / 2 * (kept - target_keep)^2, which damps the oscillation a plain dual update "
            "shows (a collapse, then everything kept)."
        },
    )
    validation_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Share of the rationales held out for early stopping and the gates "
            "(at least 8, at most validation_max)."
        },
    )
    validation_max: int = field(default=128, metadata={"help": "Cap on held-out rationales."})
    patience: int = field(
        default=3,
        metadata={
            "help": "Early stopping: end mask learning after this many evaluations without a "
            "better validation objective (L_p at the target keep, or L_p + alpha * kept); "
            "num_train_epochs is only the ceiling. The best state is restored."
        },
    )
    keep_tolerance: float = field(
        default=0.05,
        metadata={"help": "With target_keep: evaluations this far from the target do not count."},
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
        default=0.9,
        metadata={
            "help": "Initial keep probability w of every token (MLP bias). High, so the "
            "straight-through gradient is mostly taken at kept tokens, where it says what "
            "removing them costs (docs/weighting.md)."
        },
    )
    logit_bound: float | None = field(
        default=6.0,
        metadata={
            "help": "Soft bound b on the generator's logits (z = b tanh(z / b)), so no weight "
            "saturates beyond sigmoid(+-b) and a dropped token can still be recovered. None: "
            "unbounded."
        },
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
    """Trainer whose loss is Eq. 7; logs L_p, L_m, the mean weight and alpha.

    ``phase="masks"`` (mask learning): Gumbel masks, alpha's dual update
    towards ``target_keep``, validation with thresholded masks through
    :meth:`evaluate`. ``phase="adapt"``: random masks and L_p alone, for the
    predictor's adaptation.
    """

    def __init__(self, *args: Any, phase: str = "masks", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if phase not in ("masks", "adapt"):
            raise ValueError(f"phase must be 'masks' or 'adapt', got {phase!r}")
        self.phase = phase
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
        module.warming_up = self.phase == "adapt"
        out = model(**inputs)
        target = self.args.target_keep
        if model.training and self.phase == "masks" and target is not None:
            # Augmented Lagrangian of kept = target_keep: alpha * L_m is in out["loss"];
            # the quadratic term damps the dual dynamics.
            dev = out["kept_soft"] - target
            out["loss"] = out["loss"] + 0.5 * self.args.keep_penalty * dev * dev
        if model.training:
            if self.phase == "masks" and self.args.target_keep is not None:
                # Dual ascent on alpha, the multiplier of the equality constraint
                # kept = target_keep: more mask pressure while too much is kept, less
                # (negative: a reward for keeping) while too little is.
                kept = float(out["mask_loss"])
                module.alpha += self.args.dual_lr * (kept - self.args.target_keep)
            for key in ("prefix_loss", "mask_loss", "mean_weight"):
                self._parts[key] = self._parts.get(key, 0.0) + float(out[key])
            self._parts["alpha"] = self._parts.get("alpha", 0.0) + module.alpha
            self._n_parts += 1
        return (out["loss"], out) if return_outputs else out["loss"]

    def create_optimizer(self, model: Any = None) -> Any:
        # Two parameter groups: a trainable pretrained predictor learns more slowly.
        if self.optimizer is None:
            module = self.accelerator.unwrap_model(self.model)
            pred = {id(p) for p in module.predictor.parameters()} if module.predictor else set()
            params = [p for p in module.parameters() if p.requires_grad]
            own = [p for p in params if id(p) not in pred]
            theirs = [p for p in params if id(p) in pred]
            lr = self.args.learning_rate
            scale = 1.0 if self.phase == "adapt" else self.args.predictor_lr_scale
            groups = [{"params": own, "lr": lr}]
            if theirs:
                groups.append({"params": theirs, "lr": lr * scale})
            self.optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=self.args.weight_decay)
        return self.optimizer

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self._n_parts and "loss" in logs:
            for key, total in self._parts.items():
                logs[key] = round(total / self._n_parts, 4)
            self._parts, self._n_parts = {}, 0
        super().log(logs, *args, **kwargs)

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: Any = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Validation L_p with thresholded masks (w > 0.5), the kept share and alpha."""
        module = self.accelerator.unwrap_model(self.model)
        data = eval_dataset if eval_dataset is not None else self.eval_dataset
        loader = self.get_eval_dataloader(data)  # type: ignore[arg-type]
        sums = {"prefix_loss": 0.0, "kept": 0.0, "mean_weight": 0.0}
        n = 0
        was_training = module.training
        module.eval()
        with torch.no_grad():
            for batch in loader:
                batch = self._prepare_inputs(batch)
                with self.autocast_smart_context_manager():
                    out = module(**batch, mask_mode="threshold")
                sums["prefix_loss"] += float(out["prefix_loss"])
                sums["kept"] += float(out["mask_loss"])
                sums["mean_weight"] += float(out["mean_weight"])
                n += 1
        module.train(was_training)
        metrics = {f"{metric_key_prefix}_{k}": round(v / max(n, 1), 5) for k, v in sums.items()}
        metrics[f"{metric_key_prefix}_alpha"] = round(module.alpha, 5)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics

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
        (Path(out) / ALPHA_FILE).write_text(json.dumps({"alpha": model.alpha}) + "\n")


ALPHA_FILE = "kpod_alpha.json"


class EarlyStopping(TrainerCallback):
    """Ends mask learning on the validation objective and keeps the best state in memory.

    The objective is validation L_p with thresholded masks among evaluations
    whose mean weight (the expected kept fraction) is within ``keep_tolerance``
    of ``target_keep`` (or L_p + alpha * mean weight with a fixed alpha). After ``patience`` evaluations
    without improvement (counted once an evaluation qualified) training
    stops; :meth:`restore` puts the best trainable state back. A copy of the
    trainable tensors is a few MB for a frozen predictor, so nothing is
    written to disk for it (Trainer's ``load_best_model_at_end`` would save
    the whole module, predictor included, at every evaluation).
    """

    def __init__(self, config: WeightingConfig) -> None:
        self.config = config
        self.best: float = math.inf
        self.best_step: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.bad = 0
        self.history: list[dict[str, float]] = []
        self._state: dict[str, torch.Tensor] | None = None
        self._alpha: float | None = None

    def objective(self, metrics: dict[str, float]) -> float:
        # The constraint is on the expected kept fraction under the Gumbel masks,
        # i.e. the mean weight; L_p is measured with thresholded masks.
        lp, kept = metrics["eval_prefix_loss"], metrics["eval_mean_weight"]
        if self.config.target_keep is None:
            return lp + metrics["eval_alpha"] * kept
        if abs(kept - self.config.target_keep) > self.config.keep_tolerance:
            return math.inf
        return lp

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        metrics = kwargs.get("metrics") or {}
        model = kwargs.get("model")
        if "eval_prefix_loss" not in metrics or model is None:
            return control
        value = self.objective(metrics)
        self.history.append({"step": state.global_step, **metrics, "objective": value})
        if value < self.best:
            self.best, self.best_step, self.bad = value, state.global_step, 0
            self.best_metrics = dict(metrics)
            self._state = {
                k: v.detach().clone().cpu() for k, v in model.named_parameters() if v.requires_grad
            }
            self._alpha = model.alpha
        elif math.isfinite(self.best):
            self.bad += 1
            if self.bad >= self.config.patience:
                print(
                    f"kpod weights: early stop at step {state.global_step}: no better validation "
                    f"objective for {self.bad} evaluations (best {self.best:.4f} at step "
                    f"{self.best_step})",
                    flush=True,
                )
                control.should_training_stop = True
        return control

    def restore(self, module: KeypointWeighting) -> bool:
        """Load the best state into ``module``; False when no evaluation qualified."""
        if self._state is None:
            return False
        params = dict(module.named_parameters())
        with torch.no_grad():
            for k, v in self._state.items():
                params[k].copy_(v.to(params[k].device))
        if self._alpha is not None:
            module.alpha = self._alpha
        return True


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
    if config.freeze_predictor:
        predictor.requires_grad_(False)  # the adaptation, if any, trains a copy
    mcfg = ModuleConfig(
        vocab_size=embeddings.shape[0],
        embed_dim=embeddings.shape[1],
        hidden_size=config.hidden_size,
        num_heads=config.num_heads,
        tau=config.tau,
        init_keep=config.init_keep,
        logit_bound=config.logit_bound,
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


def split_validation(dataset: Any, config: WeightingConfig) -> tuple[Any, Any]:
    """A seeded held-out share of the rationales (early stopping, gates) and the rest."""
    n = len(dataset)
    n_val = min(config.validation_max, max(8, round(config.validation_fraction * n)))
    if config.validation_fraction <= 0 or n - n_val < 8:
        raise ValueError(
            f"{n} rationales are too few to hold out {n_val} for early stopping and the gates "
            "and train on the rest (at least 16 are needed); provide more rationales"
        )
    shuffled = dataset.shuffle(seed=config.seed)
    return shuffled.select(range(n_val, n)), shuffled.select(range(n_val))


def phase_args(config: WeightingConfig, output_dir: Path, **changes: Any) -> WeightingConfig:
    """A copy of ``config`` for one phase: its own folder, no checkpoints, no evaluation."""
    init = {f.name for f in dataclasses.fields(config) if f.init}
    fields = {k: v for k, v in config.to_dict().items() if k in init}
    for key in ("bf16", "use_cpu", "target_keep", "max_prefixes", "eval_steps"):
        fields[key] = getattr(config, key)  # resolved values, not their string forms
    fields.update(
        output_dir=str(output_dir),
        save_strategy="no",
        eval_strategy="no",
        load_best_model_at_end=False,
        report_to="none",
        **changes,
    )
    return type(config)(**fields)


def train_weighting(
    dataset: Any,
    config: WeightingConfig,
    tokenizer: Any,
    *,
    student: Any = None,
    predictor: Any = None,
    eval_dataset: Any = None,
) -> KeypointWeighting:
    """Adapt the predictor, learn the masks (Eq. 7), check the gates, save to ``output_dir``.

    ``dataset`` holds prepared examples (docs/architecture.md). ``student`` and
    ``predictor`` may be passed as loaded models (tests do); otherwise they are
    loaded from ``config.student`` / ``config.predictor``. ``eval_dataset``
    (prepared examples) replaces the held-out share of ``dataset`` for early
    stopping and the gates. The predictor's adaptation changes a copy, never
    the given model. Returns the module with its best generator; its gates
    are in ``output_dir/metrics.json`` (see :mod:`kpod.weighting.gates`).
    """
    from kpod.weighting.adapt import adapt_predictor
    from kpod.weighting.gates import compute_gates, print_gates, write_metrics

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
    if config.predictor_adapt not in ("cot", "none"):
        raise ValueError(f"predictor_adapt must be 'cot' or 'none', got {config.predictor_adapt!r}")
    if config.alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {config.alpha}")
    if config.target_keep is not None and not 0.0 < config.target_keep < 1.0:
        raise ValueError(f"target_keep must be in (0, 1) or None, got {config.target_keep}")
    dataset = _filter_length(dataset, config.max_length)
    if eval_dataset is None:
        dataset, eval_dataset = split_validation(dataset, config)
    from transformers import set_seed

    assert config.output_dir is not None
    out = Path(config.output_dir)
    set_seed(config.seed)  # the generator's initialisation follows config.seed
    module = build_module(config, tokenizer, student=student, predictor=predictor)
    if config.predictor_adapt == "cot":
        # Adapt a copy: the caller's model (often the student itself) stays as it was.
        module.predictor = copy.deepcopy(module.predictor)
        adapt_predictor(module, dataset, tokenizer, config, out / "adapt")
    module.predictor.requires_grad_(False)
    if not config.freeze_predictor:
        if config.predictor_lora_r > 0:
            from peft import LoraConfig, inject_adapter_in_model

            lora = LoraConfig(
                r=config.predictor_lora_r,
                lora_alpha=2 * config.predictor_lora_r,
                target_modules="all-linear",
            )
            module.predictor = inject_adapter_in_model(lora, module.predictor)
        else:
            module.predictor.requires_grad_(True)
            module.predictor.get_input_embeddings().requires_grad_(False)
    if config.eval_steps is None:
        per_epoch = math.ceil(len(dataset) / config.per_device_train_batch_size)
        config.eval_steps = max(1, per_epoch // 4)
    config.eval_strategy = IntervalStrategy.STEPS
    stopper = EarlyStopping(config)
    trainer = WeightingTrainer(
        model=module,
        args=config,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        data_collator=WeightingCollator(pad_token_id=int(tokenizer.pad_token_id or 0)),
        processing_class=tokenizer,
        callbacks=[stopper],
    )
    last = None
    if config.resume and out.is_dir():
        last = get_last_checkpoint(str(out))
        if last:
            print(f"kpod weights: resuming from {last}", flush=True)
            alpha_file = Path(last) / ALPHA_FILE
            if alpha_file.is_file():
                module.alpha = float(json.loads(alpha_file.read_text())["alpha"])
    trainer.train(resume_from_checkpoint=last)
    trainer.save_state()
    if not stopper.restore(module):
        print(
            "kpod weights: no evaluation reached the target keep ratio "
            f"{config.target_keep} +- {config.keep_tolerance}; keeping the last state",
            flush=True,
        )
    module.eval()
    gates = compute_gates(module, eval_dataset, tokenizer, config)
    gates["early_stopping"] = {
        "best_step": stopper.best_step,
        "best_objective": stopper.best if math.isfinite(stopper.best) else None,
        "history": stopper.history,
        "final_alpha": module.alpha,
    }
    module.save(out, tokenizer=tokenizer)
    (out / "train_config.json").write_text(config.to_json_string(), encoding="utf-8")
    write_metrics(out, gates)
    print_gates(gates)
    return module
