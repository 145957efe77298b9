"""Chat models behind one small interface, chosen by ``settings.LLM_PROVIDER``.

- ``base``: the types every model speaks (``ChatTurn``, ``Passage``, ``ToolSpec``,
  ``ToolRequest``, ``Completion``), its errors and the ``ChatModel`` protocol;
- ``gemini``: Google Gemini through the google-genai SDK (retries with backoff on 429/5xx
  inside the SDK, an optional fallback model, safety blocks raised as :class:`LLMBlocked` so
  the caller can answer politely);
- ``openai_compatible``: any OpenAI-compatible ``/chat/completions`` endpoint (Ollama, vLLM, a
  gateway) at ``LLM_BASE_URL``;
- ``registry``: the setting's provider, built; providers that need the domain are registered by
  their app at start (``offline``, the extractive answerer: ``conversations.offline``);
- ``observed``: the wrapper every model is handed out in (metrics, storable text).

This package imports no app.

``passages`` are the retrieved passages. The text providers read them from ``system``
(``conversations.prompts`` renders them there, fenced as data); they are passed separately too
because the offline provider answers from them directly.

``stream()`` yields text deltas and, last, the :class:`Completion`; offered tools, it may end
with ``tool_requests`` instead of (or after some) text, as ``complete`` does.

Tools (function calling): ``complete(..., tools=[ToolSpec...])`` offers the tenant's tools; a
model that wants one answers with ``Completion.tool_requests`` instead of text. The caller
(``conversations.services``) runs them and calls ``complete`` again with the history extended by
an assistant turn carrying ``tool_calls`` and one ``role="tool"`` turn per result. Each provider
translates those turns into its own wire format (Gemini ``functionCall``/``functionResponse``
parts, OpenAI ``tool_calls`` and ``tool`` messages); the offline provider recognises the common
intents itself.
"""

from agent_project.lib.llm.base import (PURPOSES, ChatModel, ChatTurn, Completion, LLMBlocked, LLMError, LLMTimeout,
                                        LLMUnavailable, Passage, ToolRequest, ToolSpec, estimate_tokens, language_of)
from agent_project.lib.llm.registry import get_chat_model, model_label, register_provider

__all__ = ["PURPOSES", "ChatModel", "ChatTurn", "Completion", "LLMBlocked", "LLMError", "LLMTimeout", "LLMUnavailable",
           "Passage", "ToolRequest", "ToolSpec", "estimate_tokens", "get_chat_model", "language_of", "model_label",
           "register_provider"]
