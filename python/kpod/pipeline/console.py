"""What ``kpod run`` prints besides the step lines: the curriculum preview and the accuracy table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kpod.schedule import StageResult

__all__ = ["print_schedule", "print_summary"]


def print_schedule(records: Sequence[StageResult], delta_steps: int) -> None:
    """The previewed curriculum, one line per stage (``--until`` before training)."""
    if not records:
        print("kpod run: no progression (training.no_progression): every stage is full CoT")
        return
    print("\nkpod run: curriculum preview (D = budget, H = difficulty written)")
    print("  stage        D(t)        H(t)  advanced/eligible  budget bound")
    for r in records:
        print(
            f"  {r.stage:>5} {r.budget:>11.1f} {r.written:>11.1f} "
            f"{len(r.selected):>9}/{r.eligible:<8} {'yes' if r.bound else 'no'}"
        )
    from kpod.training.curriculum import slack_budget_warning

    msg = slack_budget_warning(records, stages=len(records), delta_steps=delta_steps)
    if msg:
        print(f"  warning: {msg}")


def print_summary(metrics: Mapping[str, Any]) -> None:
    """Accuracy before and after training per test set, with the 95% bootstrap interval."""
    before, after = metrics.get("before") or {}, metrics.get("after") or {}
    print("\nkpod run: accuracy (95% bootstrap interval)")
    for name in sorted(set(before) | set(after)):
        cells = []
        for label, m in (("before", before.get(name)), ("after", after.get(name))):
            if m:
                cells.append(
                    f"{label} {100 * m['accuracy']:.1f}% [{100 * m['ci_low']:.1f}, {100 * m['ci_high']:.1f}]"
                    f" ({m['correct']}/{m['n']})"
                )
        print(f"  {name}: " + "   ".join(cells))
