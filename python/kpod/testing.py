"""Tiny, offline models and tokenizers for tests, examples and benchmarks.

Nothing here downloads anything: the tokenizer is a byte-level BPE trained on
the fly (on a built-in synthetic corpus, or on a given one) and the models are randomly initialised
from small configs. Real users never need this module.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterable
from typing import Any

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>", "<mask>")


def synthetic_corpus(n: int = 2000, seed: int = 0) -> list[str]:
    """Word problems and rationales in the kpod template, generated deterministically."""
    rng = random.Random(seed)
    names = ["Tom", "Anna", "Li", "Sara", "Omar", "Mia", "Raj", "Eve"]
    things = ["apples", "books", "marbles", "cookies", "dollars", "pens", "cars", "eggs"]
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        who, what = rng.choice(names), rng.choice(things)
        out.append(
            f"Q: {who} has {a} {what} and buys {b} more. How many {what} does {who} have?\n"
            f"A: Let's think step by step.\n{who} starts with {a} {what}. "
            f"Then {who} buys {b} more, so {a} + {b} = {a + b}.\n"
            f"Therefore, the answer is {a + b}."
        )
    return out


def _default_corpus() -> list[str]:
    # Built in, never read from disk: the same tokenizer (and so the same tests)
    # wherever kpod runs, with or without the data folders beside the checkout.
    return synthetic_corpus()


@functools.lru_cache(maxsize=4)
def _trained_tokenizer_json(vocab_size: int, corpus_key: tuple[str, ...] | None) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus: Iterable[str] = corpus_key if corpus_key is not None else _default_corpus()
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer(vocab_size: int = 1024, corpus: Iterable[str] | None = None) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` with offsets, pad ``<pad>`` and EOS ``</s>``."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    key = tuple(corpus) if corpus is not None else None
    backend = Tokenizer.from_str(_trained_tokenizer_json(vocab_size, key))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def tiny_causal_lm(tokenizer: Any, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Any:
    """A randomly initialised 2-layer Llama sized for CPU tests."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def tiny_seq2seq_lm(tokenizer: Any, *, d_model: int = 32, layers: int = 2, seed: int = 0) -> Any:
    """A randomly initialised 2-layer T5 sized for CPU tests."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    # decoder_start_token_id is a generic PretrainedConfig kwarg, not in T5Config's signature.
    extra: dict[str, Any] = {"decoder_start_token_id": tokenizer.pad_token_id}
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_ff=2 * d_model,
        d_kv=d_model // 4,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **extra,
    )
    return T5ForConditionalGeneration(config)
