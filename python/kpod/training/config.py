"""``KpodConfig``: ``transformers.TrainingArguments`` plus the KPOD knobs.

Every field has help text, so ``HfArgumentParser(KpodConfig)`` gives a full
``--help`` and loads YAML files (``parse_yaml_file``). Defaults follow
kpod-method sections 4, 6 and 7; the four ablation flags of the paper's Table 2
switch one thing each, and all four on give plain CoT distillation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from transformers import HfArgumentParser, TrainingArguments

from kpod.precision import apply_to_training_args
from kpod.schedule import ALGORITHMS
from kpod.training.stages import TOKEN_WEIGHT_NORMS

__all__ = ["ABLATIONS", "KpodConfig", "config_from_dict", "load_config"]

# flag -> the paper's name for the ablation (Table 2)
ABLATIONS = {
    "equal_token_weights": "w.o.-sig",
    "uniform_difficulty": "w.o.-sig-dif",
    "no_progression": "w.o.-prog",
    "no_diversity": "w.o.-div",
}


@dataclass
class KpodConfig(TrainingArguments):
    """Training arguments for KPOD progressive distillation.

    One curriculum stage per epoch: before epoch ``e`` the scheduler runs stage
    ``e + 1`` (kpod-method section 4), so epochs ``0 .. T-1`` are progressive and
    every later epoch trains on the full rationale.
    """

    kind: str = field(
        default="auto",
        metadata={
            "help": "Student architecture: 'causal' (decoder-only, e.g. Llama/SmolLM2), 'seq2seq' "
            "(encoder-decoder, e.g. T5) or 'auto' (read model.config.is_encoder_decoder).",
            "choices": ["auto", "causal", "seq2seq"],
        },
    )
    stages: int | None = field(
        default=None,
        metadata={
            "help": "T, the number of progressive stages (one per epoch); after stage T every "
            "question gets the full rationale. Default: half of num_train_epochs (at least 1); "
            "set it explicitly when training by max_steps."
        },
    )
    p: float = field(
        default=0.5,
        metadata={"help": "Budget curve exponent: D(t) = C0 + (B - C0) (t/T)^(p+1) (Eq. 10)."},
    )
    c0: float = field(
        default=0.3,
        metadata={"help": "Initial difficulty budget C0 as a fraction of the total difficulty B."},
    )
    beta: float = field(
        default=12.0,
        metadata={"help": "Weight of the cluster-diversity term in the stage objective (Eq. 12)."},
    )
    delta_steps: int = field(
        default=1,
        metadata={
            "help": "Steps a selected question moves from input to output per stage (delta_s); "
            "questions start by writing their last delta_s steps."
        },
    )
    eps: float = field(
        default=0.1,
        metadata={"help": "Accuracy parameter of the 'threshold' solver (1/2 - eps guarantee)."},
    )
    algorithm: str = field(
        default="threshold",
        metadata={
            "help": "Stage solver: 'threshold' (1/2 - eps, linear time), 'greedy_max' (1/2, "
            "quality reference) or 'density' (plain cost-benefit greedy, no guarantee).",
            "choices": list(ALGORITHMS),
        },
    )
    n_clusters: int = field(
        default=5,
        metadata={
            "help": "K of the K-means question clusters used when the data has no 'cluster' column."
        },
    )
    rescore_every: int = field(
        default=0,
        metadata={
            "help": "Beyond the paper: re-score step difficulties with the current student every R "
            "stages (0 = never; the paper scores once with the pretrained student)."
        },
    )
    difficulty_batch_size: int = field(
        default=16,
        metadata={"help": "Batch size of the no-grad difficulty scoring passes."},
    )
    use_lora: bool = field(
        default=False,
        metadata={
            "help": "Train LoRA adapters (peft) instead of all weights; full fine-tuning is the "
            "default for small students."
        },
    )
    lora_r: int = field(default=64, metadata={"help": "LoRA rank (the paper: 64 for LLaMA-7B)."})
    lora_alpha: int = field(default=128, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: str = field(
        default="all-linear",
        metadata={
            "help": "Modules that get adapters: 'all-linear' or a comma-separated list of names "
            "(e.g. 'q_proj,v_proj')."
        },
    )
    equal_token_weights: bool = field(
        default=False,
        metadata={
            "help": "Ablation w.o.-sig: every target token gets weight 1 in the distillation loss "
            "(token weights still shape the step difficulty)."
        },
    )
    token_weight_norm: str = field(
        default="none",
        metadata={
            "help": "How the keypoint weights enter the distillation loss: 'none' uses the raw "
            "sigmoid weights (Eq. 15, the paper); 'mean' divides each example's rationale "
            "weights by their mean, so the average rationale token keeps weight 1 as in plain "
            "CoT and only the relative emphasis changes. Use 'mean' when the weighting module's "
            "mean weight is far below 1 (docs/training.md). Answer tokens stay at 1."
        },
    )
    uniform_difficulty: bool = field(
        default=False,
        metadata={
            "help": "Ablation w.o.-sig-dif: step difficulty is the plain mean token NLL of the step "
            "instead of the keypoint-weighted one (affects difficulty scoring only)."
        },
    )
    no_progression: bool = field(
        default=False,
        metadata={
            "help": "Ablation w.o.-prog: no curriculum; every epoch trains on the full rationale."
        },
    )
    no_diversity: bool = field(
        default=False,
        metadata={
            "help": "Ablation w.o.-div: beta = 0, the stage objective has no diversity term."
        },
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={
            "help": "Kept False: KPOD batches carry token_weights, which the model does not accept."
        },
    )
    bf16: bool | None = field(  # type: ignore[assignment]
        default=None,
        metadata={
            "help": "bfloat16 mixed precision: true, false or 'auto' (None = auto, the default): "
            "bf16 where the device computes it natively (CUDA with bf16; a CPU with AVX512-BF16 "
            "or AMX), float32 elsewhere. true on a CPU without native bf16 warns: it is emulated "
            "there and dozens of times slower (kpod.precision)."
        },
    )
    prediction_loss_only: bool = field(
        default=True,
        metadata={
            "help": "Evaluation during training reports the loss only (full-rationale targets); "
            "accuracy comes from `kpod eval`. False would gather every logit."
        },
    )
    save_strategy: str = field(
        default="epoch",
        metadata={
            "help": "Checkpoint save strategy ('no', 'epoch', 'steps', 'best'); 'epoch' saves at "
            "every stage boundary so an interrupted run loses at most one stage.",
        },
    )

    def __post_init__(self) -> None:
        apply_to_training_args(self, "training")
        super().__post_init__()
        if self.kind not in ("auto", "causal", "seq2seq"):
            raise ValueError(f"kind must be 'auto', 'causal' or 'seq2seq', got {self.kind!r}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}"
            )
        if self.token_weight_norm not in TOKEN_WEIGHT_NORMS:
            raise ValueError(
                f"token_weight_norm must be 'none' (raw weights, Eq. 15) or 'mean' (per-example "
                f"mean 1), got {self.token_weight_norm!r}"
            )
        if self.stages is not None and self.stages < 1:
            raise ValueError(f"stages (T) must be >= 1, got {self.stages}")
        if not (self.p > -1):
            raise ValueError(f"p must be > -1 so the budget curve grows, got {self.p}")
        if not (0.0 <= self.c0 <= 1.0):
            raise ValueError(f"c0 is a fraction of the total difficulty, in [0, 1]; got {self.c0}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ValueError(f"beta must be finite and >= 0, got {self.beta}")
        if self.delta_steps < 1:
            raise ValueError(f"delta_steps must be >= 1, got {self.delta_steps}")
        if not (0.0 < self.eps < 1.0):
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")
        if self.n_clusters < 1:
            raise ValueError(f"n_clusters must be >= 1, got {self.n_clusters}")
        if self.rescore_every < 0:
            raise ValueError(f"rescore_every must be >= 0 (0 = never), got {self.rescore_every}")
        if self.difficulty_batch_size < 1:
            raise ValueError(
                f"difficulty_batch_size must be >= 1, got {self.difficulty_batch_size}"
            )
        if self.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns must stay False for KPOD: the token_weights column would "
                "be dropped before the loss sees it"
            )
        if self.dataloader_persistent_workers:
            raise ValueError(
                "dataloader_persistent_workers is not supported: workers must see each new "
                "stage's examples; use dataloader_num_workers without persistence"
            )

    @property
    def num_stages(self) -> int:
        """T: ``stages`` or half the training epochs (at least 1)."""
        if self.stages is not None:
            return int(self.stages)
        return max(1, int(self.num_train_epochs) // 2)

    @property
    def effective_beta(self) -> float:
        """beta, or 0 under the w.o.-div ablation."""
        return 0.0 if self.no_diversity else float(self.beta)

    @property
    def ablation_name(self) -> str:
        """'kpod', the paper's ablation name, 'cot' when all flags are on, or a '+'-joined mix."""
        on = [name for flag, name in ABLATIONS.items() if getattr(self, flag)]
        if not on:
            return "kpod"
        if len(on) == len(ABLATIONS):
            return "cot"
        return "+".join(on)

    @property
    def plain_cot(self) -> bool:
        """True when training reduces to plain CoT distillation (equal weights, no progression)."""
        return self.equal_token_weights and self.no_progression


def load_config(path: str | Path, **overrides: Any) -> KpodConfig:
    """Load a ``KpodConfig`` from a YAML file; keyword overrides win over the file.

    Unknown keys raise ``ValueError`` naming them.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} must hold a mapping of KpodConfig fields, got {type(data).__name__}"
        )
    data.update(overrides)
    return config_from_dict(data)


def normalize_yaml_strategies(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with YAML 1.1's bare ``no`` (read as ``False``) back to ``"no"``."""
    data = dict(data)
    for key in ("save_strategy", "eval_strategy", "logging_strategy"):
        if data.get(key) is False:
            data[key] = "no"
    return data


def config_from_dict(data: dict[str, Any]) -> KpodConfig:
    """A ``KpodConfig`` from a mapping of its fields (as read from YAML).

    Unknown keys raise ``ValueError`` naming them.
    """
    data = normalize_yaml_strategies(data)
    parser = HfArgumentParser(cast(Any, KpodConfig))
    (cfg,) = parser.parse_dict(data, allow_extra_keys=False)
    return cfg
