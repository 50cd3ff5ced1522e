"""Gates that say whether learned keypoint weights are usable (docs/weighting.md).

After mask learning, on held-out rationales:

- **informativeness**: L_p with the learned (thresholded) masks, with every
  rationale token masked and with none masked. ``gap_ratio`` =
  (L_p(all masked) - L_p(learned)) / (L_p(all masked) - L_p(none masked)):
  1 when the kept tokens carry everything the predictor uses, 0 when they carry
  nothing, negative when the learned mask is worse than masking everything;
- **mean weight** and **keep ratio** (share of rationale tokens with w > 0.5);
- **token classes**: the mean within-rationale rank of digits, operators,
  quantity words, entity names, filler and punctuation
  (:mod:`kpod.weighting.analysis`), for the trained generator and for three
  untrained ones (the controls). ``class_margin`` is the lowest rank among
  digits, operators and quantity words minus the highest among filler and
  punctuation: positive when all three key classes lead, and it should exceed
  every control's.

:func:`warnings_for` turns these into plain warnings, each naming a fix; they
are printed by ``kpod weights train`` and ``kpod run`` and saved with the
numbers in ``metrics.json`` beside the module.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

METRICS_FILE = "metrics.json"
KEY_CLASSES = ("digit", "operator", "quantity word")
LOW_CLASSES = ("filler", "punctuation")
COLLAPSE_BELOW = 0.05
KEPT_ALL_ABOVE = 0.95


def prefix_losses(module: Any, dataset: Any, tokenizer: Any, config: Any) -> dict[str, float]:
    """Mean L_p on ``dataset`` with learned, no and all rationale tokens masked."""
    from kpod.weighting.train import WeightingCollator

    collate = WeightingCollator(pad_token_id=int(tokenizer.pad_token_id or 0))
    device = next(module.generator.parameters()).device
    bs = int(getattr(config, "per_device_eval_batch_size", 8) or 8)
    use_bf16 = bool(getattr(config, "bf16", False))
    sums = {"threshold": 0.0, "keep_all": 0.0, "mask_all": 0.0}
    n = 0
    module.eval()
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=use_bf16):
        for start in range(0, len(dataset), bs):
            rows = [dataset[i] for i in range(start, min(start + bs, len(dataset)))]
            batch = {k: v.to(device) for k, v in collate(rows).items()}
            for mode in sums:
                sums[mode] += float(module(**batch, mask_mode=mode)["prefix_loss"]) * len(rows)
            n += len(rows)
    return {
        "lp_learned": sums["threshold"] / n,
        "lp_none_masked": sums["keep_all"] / n,
        "lp_all_masked": sums["mask_all"] / n,
    }


def class_margin(classes: dict[str, Any]) -> float | None:
    """min rank of the key classes - max rank of filler and punctuation (None if one is absent)."""
    try:
        key = min(classes[c]["mean_rank"] for c in KEY_CLASSES)
        low = max(classes[c]["mean_rank"] for c in LOW_CLASSES)
    except KeyError:
        return None
    return round(key - low, 4)


def compute_gates(
    module: Any, dataset: Any, tokenizer: Any, config: Any, *, n_controls: int = 3
) -> dict[str, Any]:
    """Every gate of the module on held-out prepared examples (see the module docstring)."""
    from kpod.weighting.analysis import class_table
    from kpod.weighting.module import KeypointWeighting
    from kpod.weighting.score import score_dataset

    lp = prefix_losses(module, dataset, tokenizer, config)
    span = lp["lp_all_masked"] - lp["lp_none_masked"]
    gap = lp["lp_all_masked"] - lp["lp_learned"]
    scored = score_dataset(dataset, module, tokenizer=tokenizer, progress=False)
    table = class_table(scored, tokenizer)
    weights = [
        w
        for row in scored
        for w, s in zip(row["token_weights"], row["step_ids"], strict=True)
        if s >= 0
    ]
    controls = []
    embeddings = module.generator.embed.weight.detach()
    for seed in range(n_controls):
        torch.manual_seed(seed)
        control = KeypointWeighting(module.module_config, embeddings, None).eval()
        ctable = class_table(score_dataset(dataset, control, progress=False), tokenizer)
        controls.append(
            {
                "seed": seed,
                "ranks": {c: v["mean_rank"] for c, v in ctable["classes"].items()},
                "class_margin": class_margin(ctable["classes"]),
            }
        )
    gates: dict[str, Any] = {
        "n_rationales": len(dataset),
        **{k: round(v, 4) for k, v in lp.items()},
        "informativeness_gap": round(gap, 4),
        "gap_ratio": round(gap / span, 4) if span > 0 else None,
        "mean_weight": round(sum(weights) / max(len(weights), 1), 4),
        "keep_ratio": round(sum(w > 0.5 for w in weights) / max(len(weights), 1), 4),
        "class_margin": class_margin(table["classes"]),
        "control_class_margins": [c["class_margin"] for c in controls],
    }
    return {
        "gates": gates,
        "warnings": warnings_for(gates),
        "classes": table,
        "controls": controls,
    }


def warnings_for(gates: dict[str, Any]) -> list[str]:
    """Plain warnings for gates that say the weights are not usable, each with its fix."""
    out = []
    mean = gates.get("mean_weight")
    if mean is not None and mean < COLLAPSE_BELOW:
        out.append(
            f"the module collapsed: mean weight {mean:.3f} < {COLLAPSE_BELOW}, so the weights "
            "remove almost every rationale token from the student's loss. Fix: train with "
            "target_keep (e.g. 0.5) or a lower alpha, with the adapted predictor "
            "(predictor_adapt='cot')"
        )
    if mean is not None and mean > KEPT_ALL_ABOVE:
        out.append(
            f"the module keeps everything: mean weight {mean:.3f} > {KEPT_ALL_ABOVE}, so the "
            "weights are nearly uniform. Fix: set target_keep (e.g. 0.5) or raise alpha"
        )
    gap = gates.get("informativeness_gap")
    if gap is not None and not gap > 0:
        out.append(
            f"the weights carry no signal: the learned mask does not help the answer predictor "
            f"more than masking every rationale token (L_p {gates['lp_learned']:.3f} vs "
            f"{gates['lp_all_masked']:.3f}). Fix: adapt the predictor (predictor_adapt='cot'), "
            "train longer or on more rationales; until then train the student with equal token "
            "weights (training.equal_token_weights)"
        )
    margin, controls = gates.get("class_margin"), gates.get("control_class_margins") or []
    finite = [c for c in controls if c is not None]
    if margin is not None and finite and margin <= max(finite):
        out.append(
            f"digits, operators and quantity words do not lead filler and punctuation more than "
            f"an untrained generator does (class margin {margin:+.3f} vs controls "
            f"{', '.join(f'{c:+.3f}' for c in finite)}): the ranking is not the paper's "
            "Figure 2 pattern"
        )
    return out


def write_metrics(directory: str | Path, record: dict[str, Any]) -> Path:
    """``metrics.json`` beside the module (NaN/inf written as null)."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    path = Path(directory) / METRICS_FILE
    path.write_text(json.dumps(clean(record), indent=2) + "\n", encoding="utf-8")
    return path


def read_metrics(directory: str | Path) -> dict[str, Any] | None:
    path = Path(directory) / METRICS_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def format_gates(record: dict[str, Any]) -> str:
    """The gates as a few lines of text, warnings last."""
    g = record["gates"]
    ratio = "n/a" if g.get("gap_ratio") is None else f"{g['gap_ratio']:.2f}"
    margin = "n/a" if g.get("class_margin") is None else f"{g['class_margin']:+.3f}"
    controls = ", ".join(
        "n/a" if c is None else f"{c:+.3f}" for c in g.get("control_class_margins", [])
    )
    lines = [
        f"weighting gates on {g['n_rationales']} held-out rationales:",
        f"  L_p learned mask {g['lp_learned']:.3f} | all masked {g['lp_all_masked']:.3f} | "
        f"none masked {g['lp_none_masked']:.3f}  (gap ratio {ratio}; 1 = all the "
        "rationale's information kept)",
        f"  mean weight {g['mean_weight']:.3f}, keep ratio {g['keep_ratio']:.3f}",
        f"  class margin (key classes over filler/punctuation, within-rationale rank) {margin}"
        f"; untrained controls {controls}",
    ]
    lines += [f"  WARNING: {w}" for w in record.get("warnings", [])]
    return "\n".join(lines)


def print_gates(record: dict[str, Any]) -> None:
    print("kpod weights: " + format_gates(record), flush=True)
