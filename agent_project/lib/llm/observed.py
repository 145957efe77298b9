"""The wrapper every chat model is handed out in: its calls counted and timed in the
Prometheus metrics, and what it says made storable (no NUL, no lone surrogate, no negative
token count) before any caller writes it to a row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from agent_project.lib.llm.base import ChatModel, Completion, LLMError
from agent_project.lib.storable import strip_unstorable


class ObservedChatModel:
    """Every provider's calls counted and timed in the Prometheus metrics
    (``layan_llm_*``), in one place instead of in each provider; anything else is
    the wrapped model's."""

    def __init__(self, inner: ChatModel):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _observe(self, started: float, outcome: str, result: Completion | None = None) -> None:
        from agent_project import metrics

        metrics.llm_call_observe(
            provider=self._inner.provider, model=(result.model if result else None) or self._inner.model,
            seconds=time.perf_counter() - started, outcome=outcome,
            prompt_tokens=result.prompt_tokens if result else 0,
            completion_tokens=result.completion_tokens if result else 0,
        )

    def complete(self, **kwargs) -> Completion:
        started = time.perf_counter()
        try:
            result = self._inner.complete(**kwargs)
        except LLMError as exc:
            self._observe(started, exc.__class__.__name__.removeprefix("LLM").lower() or "error")
            raise
        self._observe(started, "ok", result)
        return _storable_completion(result)

    def stream(self, **kwargs) -> Iterator[str | Completion]:
        started = time.perf_counter()
        try:
            for item in self._inner.stream(**kwargs):
                if isinstance(item, Completion):
                    self._observe(started, "ok", item)
                    item = _storable_completion(item)
                else:
                    item = storable_text(item)
                yield item
        except LLMError as exc:
            self._observe(started, exc.__class__.__name__.removeprefix("LLM").lower() or "error")
            raise


def storable_text(text: str) -> str:
    """The model's text without what PostgreSQL cannot store: NUL and unpaired surrogates (half of
    an emoji a provider split). Either had made the reply's INSERT fail after the model answered."""
    return strip_unstorable(text)  # the pattern the request limits refuse in bodies


def _storable_completion(completion: Completion) -> Completion:
    """The completion as a message row can hold it: storable text and model name, token counts
    of at least 0 (a provider's odd negative count broke the row's check after a good reply)."""
    completion.text = storable_text(completion.text)
    completion.model = storable_text(completion.model or "")
    completion.prompt_tokens = max(0, int(completion.prompt_tokens or 0))
    completion.completion_tokens = max(0, int(completion.completion_tokens or 0))
    return completion
