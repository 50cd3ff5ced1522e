"""Mean token weight per token class (compare with the paper's Figure 2).

The paper reports that digits, operators, quantity words ("twice", "total")
and entity names get high weights and filler ("can", "say", "got") low ones.
:func:`class_table` measures this on scored examples. Classes are decided
per token from its own text (after stripping spaces), in this order:

- ``digit``: contains a digit;
- ``operator``: only arithmetic symbols (``+ - * / = x × ÷ % $ < >``) and brackets;
- ``quantity word``: a word of :data:`QUANTITY_WORDS`;
- ``entity``: a capitalised word (not a pronoun or sentence filler) that also
  occurs in the example's question, e.g. a person's name;
- ``filler``: a function word of :data:`FILLER_WORDS`;
- ``punctuation``: only punctuation or whitespace;
- ``other``: everything else (content words, sub-word pieces).
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

QUANTITY_WORDS = frozenset(
    "total twice half double triple thrice times each per every more less fewer remaining left "
    "altogether sum difference product quarter third percent hundred thousand dozen pair "
    "average ratio rest all both many much one two three four five six seven eight nine ten "
    "eleven twelve twenty thirty forty fifty hundred first second".split()
)
FILLER_WORDS = frozenset(
    "a an the so then can could say says said got get gets is are was were be been being it "
    "its this that these those there here of to in on at for with by from as and or but if "
    "we you i he she they him her them his their our us will would should just also now "
    "has have had do does did which who what when how let's lets let think step".split()
)
PRONOUNS = frozenset(
    "She He They It We I You Her His Their There Then So The A An This That".split()
)
OPERATOR_RE = re.compile(r"^[-+*/=x×÷%$<>()\[\]]+$")
PUNCT_RE = re.compile(r"^[\W_]*$")
CLASSES = ("digit", "operator", "quantity word", "entity", "filler", "punctuation", "other")


def token_class(text: str, question: str = "") -> str:
    t = text.strip().replace("Ġ", "").replace("▁", "")
    if any(c.isdigit() for c in t):
        return "digit"
    if t and OPERATOR_RE.match(t):
        return "operator"
    low = t.lower()
    if low in QUANTITY_WORDS:
        return "quantity word"
    if t[:1].isupper() and t.isalpha() and len(t) > 1 and t not in PRONOUNS and t in question:
        return "entity"
    if low in FILLER_WORDS:
        return "filler"
    if PUNCT_RE.match(t):
        return "punctuation"
    return "other"


def class_table(scored: Any, tokenizer: Any, *, min_count: int = 5) -> dict[str, Any]:
    """Mean weight, share kept (w > 0.5), mean rank and count per class.

    The mean within-rationale rank (0 = the lowest weight of its rationale,
    1 = the highest, 0.5 = no preference) compares classes even when the
    weights are all small.

    Also lists the ``top`` and ``bottom`` 15 token strings by mean weight
    among those seen at least ``min_count`` times.
    """
    per_class: dict[str, list[float]] = defaultdict(list)
    per_class_rank: dict[str, list[float]] = defaultdict(list)
    per_token: dict[str, list[float]] = defaultdict(list)
    for row in scored:
        q = row.get("question", "")
        toks = [
            (tid, float(w))
            for tid, s, w in zip(
                row["input_ids"], row["step_ids"], row["token_weights"], strict=True
            )
            if s >= 0
        ]
        ranks = _percentile_ranks([w for _, w in toks])
        for (tid, w), r in zip(toks, ranks, strict=True):
            text = tokenizer.decode([tid])
            cls = token_class(text, q)
            per_class[cls].append(w)
            per_class_rank[cls].append(r)
            per_token[text.strip() or repr(text)].append(w)
    classes = {
        c: {
            "n": len(v),
            "mean_weight": float(f"{sum(v) / len(v):.4g}"),
            "kept_share": round(sum(x > 0.5 for x in v) / len(v), 4),
            "mean_rank": round(sum(per_class_rank[c]) / len(v), 4),
        }
        for c in CLASSES
        if (v := per_class.get(c))
    }
    ranked = sorted(
        ((t, sum(v) / len(v), len(v)) for t, v in per_token.items() if len(v) >= min_count),
        key=lambda x: -x[1],
    )
    fmt = [{"token": t, "mean_weight": float(f"{m:.4g}"), "n": n} for t, m, n in ranked]
    all_w = [x for v in per_class.values() for x in v]
    return {
        "classes": classes,
        "overall": {
            "n": len(all_w),
            "mean_weight": float(f"{sum(all_w) / max(len(all_w), 1):.4g}"),
        },
        "top": fmt[:15],
        "bottom": fmt[-15:][::-1],
    }


def _percentile_ranks(values: list[float]) -> list[float]:
    """Within-example rank of each value in [0, 1] (ties share their mean rank)."""
    n = len(values)
    if n <= 1:
        return [0.5] * n
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 / (n - 1)
        i = j + 1
    return ranks


def markdown_table(table: dict[str, Any]) -> str:
    lines = [
        "| class | tokens | mean weight | kept (w > 0.5) | mean within-rationale rank |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for c, v in table["classes"].items():
        lines.append(
            f"| {c} | {v['n']} | {v['mean_weight']:.3g} | {100 * v['kept_share']:.1f}% "
            f"| {v['mean_rank']:.3f} |"
        )
    o = table["overall"]
    lines.append(f"| all rationale tokens | {o['n']} | {o['mean_weight']:.3g} | | 0.5 |")
    lines.append("")
    lines.append(
        "Highest mean weight: "
        + ", ".join(f"`{t['token']}` {t['mean_weight']:.3g}" for t in table["top"])
    )
    lines.append("")
    lines.append(
        "Lowest mean weight: "
        + ", ".join(f"`{t['token']}` {t['mean_weight']:.3g}" for t in table["bottom"])
    )
    return "\n".join(lines)
