"""The token-weight view (the paper's Figure 2): rationale tokens shaded by weight.

``render_fragment`` gives an HTML ``<div>`` (one rationale per row) that
``kpod.report`` can embed; ``render_html`` wraps it in a page; ``render_png``
draws the same with matplotlib. Each token is a ``<span class="tok">`` with
its weight in ``data-weight`` and a title tooltip, so the HTML can be parsed
back (the tests do).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path
from typing import Any

COLOR = (214, 39, 40)  # weight 1 = full red, 0 = white


def _rows(examples: Any) -> list[dict[str, Any]]:
    rows = list(examples) if not isinstance(examples, list) else examples
    for i, r in enumerate(rows):
        name = repr(r.get("id", f"#{i}"))
        if "token_weights" not in r:
            raise ValueError(f"example {name} has no token_weights; run `kpod weights score` first")
        if len(r["token_weights"]) != len(r["input_ids"]):
            raise ValueError(
                f"example {name}: {len(r['token_weights'])} token weights for "
                f"{len(r['input_ids'])} tokens; token_weights must align with input_ids"
            )
    return rows


def token_texts(ids: list[int], tokenizer: Any) -> list[str]:
    """The text each token adds when decoding ``ids`` left to right.

    Decoding growing prefixes (not tokens one by one) keeps the spaces of
    word-level tokenizers and the multi-byte characters of byte-level BPE.
    """
    texts, prev = [], ""
    for j in range(len(ids)):
        cur = tokenizer.decode(ids[: j + 1])
        texts.append(cur[len(prev) :] if cur.startswith(prev) else tokenizer.decode([ids[j]]))
        prev = cur
    return texts


def rationale_tokens(row: dict[str, Any], tokenizer: Any) -> list[tuple[str, float, int]]:
    """(text, weight, step) for each rationale token of a scored row."""
    picked = [
        (int(t), float(w), int(s))
        for t, s, w in zip(row["input_ids"], row["step_ids"], row["token_weights"], strict=True)
        if s >= 0
    ]
    texts = token_texts([t for t, _, _ in picked], tokenizer)
    return [(x, w, s) for x, (_, w, s) in zip(texts, picked, strict=True)]


def render_fragment(examples: Iterable[dict[str, Any]], tokenizer: Any) -> str:
    rows = _rows(examples)
    parts = ['<div class="kpod-token-weights">']
    for i, row in enumerate(rows):
        rid = html.escape(str(row.get("id", i)))
        parts.append(f'<div class="rationale" data-id="{rid}">')
        q = row.get("question")
        if q:
            parts.append(f'<div class="question">{html.escape(q)}</div>')
        # One line of HTML: the paragraph is white-space: pre-wrap, so a newline between
        # two token spans would be drawn as a line break.
        toks = []
        prev_step = None
        for text, w, s in rationale_tokens(row, tokenizer):
            if prev_step is not None and s != prev_step:
                toks.append('<span class="step-break"> | </span>')
            prev_step = s
            r, g, b = COLOR
            toks.append(
                f'<span class="tok" data-weight="{w:.4f}" data-step="{s}" title="{w:.3f}" '
                f'style="background: rgba({r},{g},{b},{w:.3f})">{html.escape(text)}</span>'
            )
        parts.append('<p class="tokens">' + "".join(toks) + "</p></div>")
    parts.append("</div>")
    return "\n".join(parts)


STYLE = """
body { font-family: sans-serif; margin: 2em; }
.rationale { border-bottom: 1px solid #ddd; padding: 0.6em 0; }
.question { color: #555; font-size: 0.9em; margin-bottom: 0.3em; }
.tokens { font-family: monospace; white-space: pre-wrap; line-height: 1.8; margin: 0; }
.tok { border-radius: 2px; }
.step-break { color: #aaa; }
"""


def render_html(
    examples: Iterable[dict[str, Any]], tokenizer: Any, title: str = "kpod token weights"
) -> str:
    """A self-contained HTML page: one rationale per row, tokens shaded by weight."""
    body = render_fragment(examples, tokenizer)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        "<p>Darker = higher weight w (probability that the token is kept). "
        "Grey bars separate steps.</p>\n"
        f"{body}\n</body></html>\n"
    )


def render_png(
    examples: Iterable[dict[str, Any]], tokenizer: Any, path: str | Path, *, width_chars: int = 110
) -> Path:
    """Draw the rationales with matplotlib (monospace, wrapped) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(examples)
    lines: list[list[tuple[str, float]]] = []
    for row in rows:
        line: list[tuple[str, float]] = []
        used = 0
        for text, w, _ in rationale_tokens(row, tokenizer):
            text = text.replace("\n", " ")
            if used + len(text) > width_chars and line:
                lines.append(line)
                line, used = [], 0
            line.append((text, w))
            used += len(text)
        lines.append(line)
        lines.append([])  # gap between rationales
    char_w, line_h = 1.0 / width_chars, 1.0 / max(len(lines), 1)
    fig = plt.figure(figsize=(width_chars * 0.075 + 0.2, max(len(lines), 1) * 0.28))
    cmap = plt.get_cmap("Reds")
    for li, line in enumerate(lines):
        x = 0.0
        y = 1.0 - (li + 0.8) * line_h
        for text, w in line:
            fig.patches.append(
                plt.Rectangle(
                    (x, y - 0.15 * line_h),
                    char_w * len(text),
                    line_h * 0.9,
                    transform=fig.transFigure,
                    color=cmap(0.85 * w),
                    linewidth=0,
                )
            )
            fig.text(x, y, text, family="monospace", fontsize=9, transform=fig.transFigure)
            x += char_w * len(text)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
