"""The teacher's prompt: the paper's zero-shot CoT template, chat or completion style.

KPOD's teacher is GPT-3.5-Turbo prompted zero-shot with "Let's think step by
step" (kpod-method section 8). kpod's default keeps the exact words of the
student's template (:mod:`kpod.data.template`), so a rationale continues the
same prompt the student later reads:

* **completion** style: the text ``Q: <question>\\nA: Let's think step by step.\\n``
  (exactly :func:`kpod.data.template.prompt` for open questions);
* **chat** style: one user message ``Q: <question>\\nA: Let's think step by step.``
  after a short system message asking for one step per line and a final
  ``Therefore, the answer is <answer>.`` sentence ([kpod decision]: the paper's
  teacher answers in that form, which makes the answer extraction reliable;
  pass ``system=""`` to send the bare zero-shot prompt).

Templates are plain text with two placeholders, ``{question}`` and ``{choices}``
(empty for open questions, else ``\\nAnswer Choices: (A) ... (B) ...``); any
other braces are left alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kpod.data.schema import LETTERS

__all__ = [
    "CHAT_SYSTEM",
    "CHAT_USER",
    "COMPLETION",
    "STYLES",
    "PromptTemplate",
    "format_choices",
]

STYLES = ("chat", "completion")
CHAT_SYSTEM = (
    "Answer the question. Reason step by step, one step per line, and end with a line "
    "of the form 'Therefore, the answer is <answer>.'"
)
CHAT_USER = "Q: {question}{choices}\nA: Let's think step by step."
COMPLETION = "Q: {question}{choices}\nA: Let's think step by step.\n"


def format_choices(choices: Sequence[str]) -> str:
    """``\\nAnswer Choices: (A) x (B) y`` for multiple choice, ``""`` for open questions."""
    if not choices:
        return ""
    return "\nAnswer Choices: " + " ".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))


@dataclass(frozen=True)
class PromptTemplate:
    """How a question becomes a teacher request.

    Args:
        style: ``"chat"`` (messages) or ``"completion"`` (one text).
        template: the user message (chat) or the whole prompt (completion);
            default :data:`CHAT_USER` / :data:`COMPLETION`.
        system: the chat system message (default :data:`CHAT_SYSTEM`; ``""``
            sends none). Ignored for completion style.
    """

    style: str = "chat"
    template: str | None = None
    system: str | None = None

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"prompt style must be one of {STYLES}, got {self.style!r}")
        if "{question}" not in self.text:
            raise ValueError(f"the prompt template has no {{question}} placeholder: {self.text!r}")

    @property
    def text(self) -> str:
        if self.template is not None:
            return self.template
        return CHAT_USER if self.style == "chat" else COMPLETION

    @property
    def system_text(self) -> str:
        if self.style != "chat":
            return ""
        return CHAT_SYSTEM if self.system is None else self.system

    def render(self, question: str, choices: Sequence[str] = ()) -> str:
        """The user message (chat) or prompt text (completion) for one question."""
        return self.text.replace("{choices}", format_choices(choices)).replace(
            "{question}", question.strip()
        )

    def messages(self, question: str, choices: Sequence[str] = ()) -> list[dict[str, str]]:
        """Chat messages for one question (system message first when there is one)."""
        out = []
        if self.system_text:
            out.append({"role": "system", "content": self.system_text})
        out.append({"role": "user", "content": self.render(question, choices)})
        return out

    def request(self, question: str, choices: Sequence[str] = ()) -> Any:
        """Chat messages or the completion text, as the backend sends it."""
        if self.style == "chat":
            return self.messages(question, choices)
        return self.render(question, choices)

    def sha256(self) -> str:
        """A short hash of style, system message and template (stored with every record)."""
        blob = json.dumps([self.style, self.system_text, self.text], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
