"""Teacher backends: any OpenAI-compatible HTTP server, or a local transformers model.

:class:`OpenAIBackend` talks to vLLM, SGLang, llama.cpp's server, ``transformers
serve`` or a hosted API through the ``openai`` client library (the ``teacher``
extra). kpod does the retries itself (the client's own are switched off) so
that every retry is counted by reason. The API key is read from the environment
and never logged or written: every error text kpod keeps or prints has it
masked.

:class:`TransformersBackend` runs a local model with the batched generation of
``kpod eval`` (:func:`kpod.evaluation.generate_batched`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Completion",
    "OpenAIBackend",
    "RequestFailed",
    "RetryableError",
    "TeacherError",
    "TransformersBackend",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
TEACHER_EXTRA = 'pip install "kpod[teacher]"'


class TeacherError(ValueError):
    """A problem that stops the whole run (bad input, unreachable server, unknown model)."""


class RetryableError(Exception):
    """A request that may succeed when sent again (429, 5xx, timeout, connection)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RequestFailed(Exception):
    """A request the server refused for this question only (e.g. 400: prompt too long)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Completion:
    """One teacher answer."""

    text: str
    finish_reason: str | None  # "stop", "length", ...
    prompt_tokens: int | None
    completion_tokens: int | None


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("retry-after")
        return max(0.0, float(value)) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


class OpenAIBackend:
    """An OpenAI-compatible endpoint (``/v1/chat/completions`` or ``/v1/completions``).

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``; default ``$OPENAI_BASE_URL``,
            else the OpenAI API.
        api_key_env: the environment variable holding the key (default
            ``OPENAI_API_KEY``); local servers need none.
        timeout: seconds per request.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
    ):
        try:
            import openai  # noqa: F401
        except ImportError:
            raise TeacherError(
                f"the OpenAI-compatible backend needs the 'openai' package: {TEACHER_EXTRA}"
            ) from None
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip(
            "/"
        )
        self.api_key_env = api_key_env
        self._key = os.environ.get(api_key_env) or None
        self.timeout = timeout
        self._client: Any = None

    def scrub(self, text: str) -> str:
        """``text`` with the API key masked."""
        return text.replace(self._key, "***") if self._key else text

    async def start(self) -> None:
        import openai

        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._key or "EMPTY",
            max_retries=0,
            timeout=self.timeout,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _classify(self, exc: Exception, model: str) -> Exception:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return RetryableError("timeout")
        if isinstance(exc, openai.APIConnectionError):
            return RetryableError("connection error")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            msg = str(getattr(exc, "message", exc))
            msg = self.scrub(msg.removeprefix(f"Error code: {status} - "))[:300]
            if status == 429:
                return RetryableError("429 rate limited", _retry_after(exc.response))
            if status >= 500 or status in (408, 409):
                return RetryableError(f"{status} server error", _retry_after(exc.response))
            if status in (401, 403):
                return TeacherError(
                    f"{self.base_url} refused the request ({status}: {msg}); "
                    f"is the API key in ${self.api_key_env} right?"
                )
            if status == 404:
                return TeacherError(f"{self.base_url} answered 404 for model {model!r}: {msg}")
            return RequestFailed(f"{status}: {msg}")
        return exc

    async def served_models(self) -> list[str] | None:
        """The ids ``GET /models`` lists, or None when the server has no such route."""
        import openai

        try:
            page = await self._client.models.list()
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403, 429) or exc.status_code >= 500:
                raise self._classify(exc, "") from None
            return None  # 404/405: a server without the route
        except openai.APIError as exc:
            raise self._classify(exc, "") from None
        return [m.id for m in page.data]

    async def complete(self, model: str, request: Any, params: Mapping[str, Any]) -> Completion:
        """Send one request; raises RetryableError, RequestFailed or TeacherError."""
        import openai

        try:
            if isinstance(request, str):
                resp = await self._client.completions.create(model=model, prompt=request, **params)
                choice = resp.choices[0]
                text = choice.text
            else:
                resp = await self._client.chat.completions.create(
                    model=model, messages=request, **params
                )
                choice = resp.choices[0]
                text = choice.message.content
        except openai.APIError as exc:
            raise self._classify(exc, model) from None
        except IndexError:
            raise RequestFailed("the server answered with no choices") from None
        usage = getattr(resp, "usage", None)
        return Completion(
            text=text or "",
            finish_reason=getattr(choice, "finish_reason", None),
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
        )


class TransformersBackend:
    """A local ``transformers`` model with batched generation (kpod eval's code path).

    Args:
        model: a model object, or a name/path (``smollm2-135m`` for the offline
            student, a Hub id, a folder) loaded like a kpod student.
        tokenizer: a tokenizer object or name; default the model's own.
        kind: ``"auto"``, ``"causal"`` or ``"seq2seq"``.
        batch_size, device, dtype: generation batch, device (default cuda if
            available) and dtype of a model loaded by name.
    """

    name = "transformers"

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        kind: str = "auto",
        batch_size: int = 8,
        device: Any = None,
        dtype: Any = None,
    ):
        try:
            import torch
        except ImportError:
            raise TeacherError(
                'the local transformers backend needs the training stack: pip install "kpod[train]"'
            ) from None
        from kpod.models import resolve_kind

        if isinstance(model, (str, os.PathLike)):
            from kpod.models import load_student, load_tokenizer

            self.model_name = str(model)
            tokenizer = tokenizer if tokenizer is not None else str(model)
            model = load_student(str(model), kind=kind, dtype=dtype)
            model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        else:
            self.model_name = str(getattr(model.config, "_name_or_path", "") or "model")
            if tokenizer is None:
                raise ValueError("pass the tokenizer with a model object")
            if device is not None:
                model.to(device)
        if isinstance(tokenizer, (str, os.PathLike)):
            from kpod.models import load_tokenizer

            tokenizer = load_tokenizer(str(tokenizer))
        self.model = model
        self.tokenizer = tokenizer
        self.kind = resolve_kind(model, kind)
        self.batch_size = batch_size

    def prompt_ids(self, request: Any) -> list[int]:
        from kpod.evaluation import text_ids

        if isinstance(request, str):
            return text_ids(self.tokenizer, request, self.kind)
        if not getattr(self.tokenizer, "chat_template", None):
            raise TeacherError(
                f"{self.model_name} has no chat template; use --prompt-style completion"
            )
        text = self.tokenizer.apply_chat_template(
            request, add_generation_prompt=True, tokenize=False
        )
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if self.kind == "seq2seq":
            ids.append(int(self.tokenizer.eos_token_id))
        return ids

    def generate(
        self,
        requests: Sequence[Any],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        seed: int | None,
        on_batch: Callable[[list[int], list[Completion]], None],
        show_progress: bool = True,
    ) -> None:
        """Generate for every request; ``on_batch(indices, completions)`` after each batch."""
        import torch

        from kpod.evaluation import Generation, generate_batched

        if seed is not None:
            torch.manual_seed(seed)
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": top_p}
            if temperature > 0
            else None
        )

        def done(indices: list[int], gens: list[Generation]) -> None:
            on_batch(
                indices,
                [
                    Completion(
                        g.text,
                        "stop" if g.finished else "length",
                        g.prompt_tokens,
                        g.completion_tokens,
                    )
                    for g in gens
                ],
            )

        generate_batched(
            self.model,
            self.tokenizer,
            [self.prompt_ids(r) for r in requests],
            kind=self.kind,
            batch_size=self.batch_size,
            max_new_tokens=max_tokens,
            show_progress=show_progress,
            on_batch=done,
            sampling=sampling,
            desc="teacher",
        )
