"""Task adaptation of the answer predictor before mask learning (docs/weighting.md).

A pretrained 135M model, frozen, reads a rationale only to copy the answer
digits out of its end; from an earlier prefix it cannot compute anything, so
Eq. 5's every-prefix loss rewards nothing but those digits and the mask loss
removes the rest. Adaptation ("cot", the default) fine-tunes the predictor on
the same training rationales in two phases:

1. plain CoT fine-tuning: next-token loss on rationale and answer given the
   question (``adapt_epochs``), with transformers' ``Trainer`` and
   ``DataCollatorForSeq2Seq`` (which pads ``labels`` with -100);
2. answer-only training under random masks, every prefix (``adapt_mask_epochs``):
   each example keeps its rationale tokens at its own random rate, so the
   predictor learns to read the mask vector and partial rationales, while the
   weight generator is not involved.

The adapted predictor is saved in ``<output_dir>/adapt/`` (safetensors, with
the mask vector) and reused when the same command is run again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kpod.models import tied_parameter_names
from kpod.weighting.module import PROMPT

if TYPE_CHECKING:
    from kpod.weighting.module import KeypointWeighting
    from kpod.weighting.train import WeightingConfig

DONE_FILE = "adapt_done.json"
STATE_FILE = "predictor.safetensors"


def _cot_rows(dataset: Any) -> Any:
    """input_ids / labels for causal CoT fine-tuning: loss on rationale and answer only."""

    def label(ex: dict[str, Any]) -> dict[str, Any]:
        return {
            "input_ids": ex["input_ids"],
            "labels": [
                -100 if s == PROMPT else t
                for t, s in zip(ex["input_ids"], ex["step_ids"], strict=True)
            ],
        }

    return dataset.map(label, remove_columns=dataset.column_names, desc="CoT labels")


def adapt_predictor(
    module: KeypointWeighting,
    dataset: Any,
    tokenizer: Any,
    config: WeightingConfig,
    out: Path,
) -> dict[str, Any]:
    """Adapt ``module.predictor`` (and the mask vector) in place; returns the phase record."""
    from safetensors.torch import load_file, save_file
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from kpod.weighting.train import WeightingCollator, WeightingTrainer, phase_args

    done = out / DONE_FILE
    predictor = module.predictor
    if done.is_file():
        state = load_file(str(out / STATE_FILE))
        module.mask_embedding.data.copy_(state.pop("__mask_embedding__"))
        missing, unexpected = predictor.load_state_dict(state, strict=False)
        if set(missing) - tied_parameter_names(predictor) or unexpected:
            raise ValueError(
                f"{out / STATE_FILE} does not fit the answer predictor (missing {missing}, "
                f"unexpected {unexpected}); delete {out} to adapt it again"
            )
        record: dict[str, Any] = json.loads(done.read_text(encoding="utf-8"))
        print(f"kpod weights: predictor adaptation reused from {out}", flush=True)
        return record
    out.mkdir(parents=True, exist_ok=True)
    record = {"method": "cot", "phases": []}
    predictor.requires_grad_(True)
    predictor.get_input_embeddings().requires_grad_(True)
    t0 = time.perf_counter()
    if config.adapt_epochs > 0:
        args = TrainingArguments(
            output_dir=str(out / "cot"),
            num_train_epochs=config.adapt_epochs,
            learning_rate=config.adapt_learning_rate,
            per_device_train_batch_size=config.per_device_train_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            warmup_steps=0.1,
            lr_scheduler_type="linear",
            weight_decay=0.0,
            logging_steps=config.logging_steps,
            save_strategy="no",
            report_to="none",
            bf16=bool(config.bf16),
            use_cpu=bool(config.use_cpu),
            seed=config.seed,
            disable_tqdm=config.disable_tqdm,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = Trainer(
            model=predictor,
            args=args,
            train_dataset=_cot_rows(dataset),
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
        )
        result = trainer.train()
        record["phases"].append(
            {"phase": "cot", "epochs": config.adapt_epochs, "loss": round(result.training_loss, 4)}
        )
    if config.adapt_mask_epochs > 0:
        predictor.get_input_embeddings().requires_grad_(False)
        module.generator.requires_grad_(False)
        args = phase_args(
            config,
            out / "masks",
            num_train_epochs=config.adapt_mask_epochs,
            learning_rate=config.adapt_learning_rate,
            predictor_lr_scale=1.0,
            max_steps=-1,
        )
        trainer = WeightingTrainer(
            model=module,
            args=args,
            train_dataset=dataset,
            data_collator=WeightingCollator(pad_token_id=int(tokenizer.pad_token_id or 0)),
            processing_class=tokenizer,
            phase="adapt",
        )
        result = trainer.train()
        module.generator.requires_grad_(True)
        module.generator.embed.weight.requires_grad_(False)
        record["phases"].append(
            {
                "phase": "random masks",
                "epochs": config.adapt_mask_epochs,
                "loss": round(result.training_loss, 4),
            }
        )
    module.warming_up = False
    record["seconds"] = round(time.perf_counter() - t0, 1)
    # Tied output weights share their tensor with the embeddings: save one copy.
    tied = tied_parameter_names(predictor)
    state = {
        k: v.detach().contiguous().cpu() for k, v in predictor.state_dict().items() if k not in tied
    }
    state["__mask_embedding__"] = module.mask_embedding.detach().contiguous().cpu()
    save_file(state, str(out / STATE_FILE), metadata={"format": "pt"})
    done.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"kpod weights: predictor adapted in {record['seconds']} s ({record['phases']})")
    return record
