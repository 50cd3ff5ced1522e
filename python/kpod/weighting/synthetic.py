"""A synthetic keypoint task for checking that mask learning learns.

Each example's rationale has a few steps; every step hides one *key* digit
among random filler words, and the answer is the key digits in order. A
predictor that copies digits from the rationale can answer only if the digits
are kept, while filler carries no information, so a working weighting module
must give the digits high weights and the filler low ones.

Examples follow the prepared-example contract (docs/architecture.md) and use a
word-level tokenizer, so the module, the scorer and the view run on them
unchanged. Used by the tests and by ``docs/weighting.md``.
"""

from __future__ import annotations

import random
from typing import Any

DIGITS = [str(d) for d in range(10)]
FILLER = [
    "we",
    "can",
    "say",
    "got",
    "then",
    "so",
    "the",
    "a",
    "see",
    "it",
    "is",
    "now",
    "look",
    "here",
    "well",
    "just",
    "also",
    "they",
    "some",
    "that",
]
TEMPLATE = ["Q:", "list", "the", "numbers", "A:", "Let's", "think", "step", "by", "step", "."]
ANSWER_HEAD = ["Therefore,", "answer", "is"]
SPECIALS = ["<pad>", "</s>", "<unk>", "<mask>"]


def make_tokenizer() -> Any:
    """A whitespace word-level ``PreTrainedTokenizerFast`` over the task's words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = list(dict.fromkeys(SPECIALS + DIGITS + FILLER + TEMPLATE + ANSWER_HEAD))
    vocab = {w: i for i, w in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def make_examples(
    tokenizer: Any,
    n: int,
    *,
    n_steps: int = 3,
    filler_per_step: int = 4,
    seed: int = 0,
    restate: bool = False,
) -> list[dict[str, Any]]:
    """``n`` prepared examples plus a ``key_mask`` column (1 on key digits).

    With ``restate`` a last step repeats the key digits among filler words, so
    the full rationale alone does not need the earlier steps' digits: only
    the every-prefix loss (Eq. 5) makes them count. ``key_mask`` then marks
    the original digits (and ``restated_mask`` the repeated ones).
    """
    rng = random.Random(seed)
    vocab = tokenizer.get_vocab()
    eos = tokenizer.eos_token_id
    out = []
    for i in range(n):
        ids = [vocab[w] for w in TEMPLATE]
        step_ids = [-1] * len(ids)
        key = [0] * len(ids)
        digits, steps = [], []
        for k in range(n_steps):
            d = rng.choice(DIGITS)
            digits.append(d)
            words = [rng.choice(FILLER) for _ in range(filler_per_step)]
            words.insert(rng.randrange(filler_per_step + 1), d)
            steps.append(" ".join(words))
            ids += [vocab[w] for w in words]
            step_ids += [k] * len(words)
            key += [int(w == d) for w in words]
        restated = [0] * len(ids)
        if restate:
            # the key digits again, in order, among filler words
            words = [rng.choice(FILLER) for _ in range(filler_per_step)]
            slots = sorted(rng.randrange(filler_per_step + 1) for _ in digits)
            for j, (slot, d) in enumerate(zip(slots, digits, strict=True)):
                words.insert(slot + j, d)
            steps.append(" ".join(words))
            ids += [vocab[w] for w in words]
            step_ids += [n_steps] * len(words)
            key += [0] * len(words)
            restated += [int(w in DIGITS) for w in words]
        restated += [0] * (len(ids) - len(restated))
        head = [vocab[w] for w in ANSWER_HEAD]
        ans = [vocab[d] for d in digits]
        ids += [*head, *ans, eos]
        step_ids += [-2] * (len(head) + len(ans) + 1)
        answer_mask = (
            [0] * (len(ids) - len(ans) - 1 - len(head)) + [0] * len(head) + [1] * len(ans) + [0]
        )
        key += [0] * (len(head) + len(ans) + 1)
        restated += [0] * (len(head) + len(ans) + 1)
        out.append(
            {
                "id": f"syn-{seed}-{i}",
                "question": "list the numbers",
                "rationale": "\n".join(steps),
                "answer": " ".join(digits),
                "steps": steps,
                "n_steps": len(steps),
                "input_ids": ids,
                "step_ids": step_ids,
                "answer_mask": answer_mask,
                "key_mask": key,
                "restated_mask": restated,
            }
        )
    return out
