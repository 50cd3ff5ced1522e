"""``dss-palm``: distilling-step-by-step PaLM completions aligned with their question file."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kpod.data.answers import format_number
from kpod.data.loaders.readers import Located, iter_json_array, load_json_any
from kpod.data.schema import InvalidRecordError, choice_letter

__all__ = ["read"]


_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _eval_arith(expr: str) -> float:
    """Evaluate +-*/ arithmetic safely (SVAMP equations such as ``( 84.0 / 2.0 )``)."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](ev(node.left), ev(node.right)))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return float(_OPS[type(node.op)](ev(node.operand)))
        raise ValueError(f"unsupported expression {expr!r}")

    return ev(ast.parse(expr.strip(), mode="eval").body)


def _palm_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = list(path.glob("*_CoT_*.json"))
    else:
        files = [path]
    return sorted(
        files,
        key=lambda p: (
            p.name.split("_CoT_")[0],
            int(re.sub(r"\D", "", p.stem.split("_CoT_")[-1]) or 0),
        ),
    )


def read(
    path: Path, stem: str, source: str | Path | None = None, split: str | None = None, **_: Any
) -> Iterator[Located | InvalidRecordError]:
    """``path``: one ``*_CoT_*.json`` file, or the ``llm`` folder with ``split`` (``train``/``test``)."""
    if source is None:
        raise ValueError(
            f"{path}: format 'dss-palm' needs source=... (the question file the completions align with)"
        )
    files = _palm_files(path)
    if path.is_dir():
        if split is None:
            raise ValueError(f"{path}: a dss-palm folder needs split='train' or 'test'")
        files = [f for f in files if f.name.startswith(f"{split}_CoT_")]
    if not files:
        raise FileNotFoundError(f"{path}: no *_CoT_*.json completion files found")
    completions: list[tuple[str, str]] = []
    for f in files:
        kind, data = load_json_any(f)
        if kind != "json" or not isinstance(data, list):
            raise InvalidRecordError(
                str(f), "top level", None, "expected a JSON array of completion strings"
            )
        completions += [(f"{f.name} index {k}", c) for k, c in enumerate(data)]
    src = Path(source)
    src_items = list(iter_json_array(src))
    if len(src_items) != len(completions):
        raise ValueError(
            f"{path}: {len(completions)} completions but {len(src_items)} records in {src}; "
            "pass all batch files of one split, in order"
        )
    for idx, ((cloc, comp), item) in enumerate(zip(completions, src_items, strict=True)):
        if isinstance(item, InvalidRecordError):
            yield item
            continue
        loc, obj = item
        location = f"{cloc} ({src.name} {loc})"
        if not isinstance(comp, str):
            yield InvalidRecordError(str(path), location, "rationale", "completion is not a string")
            continue
        rationale = re.split(r"\n\s*Q:", comp, maxsplit=1)[0].strip()
        if "choices" in obj:  # CommonsenseQA
            choices, answer = obj.get("choices"), obj.get("answer")
            answer = choice_letter(answer, choices) or answer
            yield (
                location,
                {
                    "id": obj.get("id"),
                    "question": obj.get("question"),
                    "rationale": rationale,
                    "answer": answer,
                    "choices": choices,
                },
            )
        else:  # DSS SVAMP {"input", "label": equation}
            label = obj.get("label")
            try:
                answer = format_number(_eval_arith(label)) if isinstance(label, str) else label
            except (ValueError, SyntaxError, ZeroDivisionError):
                yield InvalidRecordError(
                    str(src), loc, "label", f"cannot evaluate equation {label!r}"
                )
                continue
            yield (
                location,
                {
                    "id": obj.get("id") or f"{src.stem}-{idx}",
                    "question": obj.get("input"),
                    "rationale": rationale,
                    "answer": answer,
                },
            )
