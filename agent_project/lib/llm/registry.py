"""Which chat model ``settings.LLM_PROVIDER`` names, built with the settings it needs.

``gemini`` and ``openai`` live beside this module. A provider that needs the domain (the
offline extractive answerer quotes the knowledge base: ``conversations.offline``) is
registered by its app at start (``register_provider`` in ``AppConfig.ready()``), so this
package imports no app.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agent_project.lib.llm.base import ChatModel
from agent_project.lib.llm.gemini import GeminiChatModel
from agent_project.lib.llm.observed import ObservedChatModel
from agent_project.lib.llm.openai_compatible import OpenAICompatibleChatModel

#: builds a provider's model for a tenant (or None) and a locale (or None: the tenant's)
Factory = Callable[..., ChatModel]


def _common() -> dict:
    return {
        "timeout": settings.LLM_TIMEOUT_SECONDS,
        "retries": getattr(settings, "LLM_MAX_RETRIES", 2),
        "retry_initial_delay": getattr(settings, "LLM_RETRY_INITIAL_DELAY", 1.0),
        "retry_max_delay": getattr(settings, "LLM_RETRY_MAX_DELAY", 8.0),
        "temperature": getattr(settings, "LLM_TEMPERATURE", 0.3),
        "max_output_tokens": getattr(settings, "LLM_MAX_OUTPUT_TOKENS", 1024),
    }


def _gemini(tenant, locale: str | None = None) -> ChatModel:
    return GeminiChatModel(api_key=settings.GEMINI_API_KEY, model=settings.LLM_MODEL,
                           fallback_model=settings.LLM_FALLBACK_MODEL, base_url=settings.GEMINI_BASE_URL, **_common())


def _openai(tenant, locale: str | None = None) -> ChatModel:
    return OpenAICompatibleChatModel(base_url=settings.LLM_BASE_URL, model=settings.LLM_MODEL,
                                     api_key=settings.LLM_API_KEY, fallback_model=settings.LLM_FALLBACK_MODEL,
                                     **_common())


PROVIDERS: dict[str, Factory] = {"gemini": _gemini, "openai": _openai}
#: what ``/health`` says of a provider whose model is not ``settings.LLM_MODEL``
LABELS: dict[str, dict] = {}


def register_provider(name: str, factory: Factory, *, label: dict | None = None) -> None:
    """Make ``LLM_PROVIDER=name`` build its model with ``factory(tenant, locale=...)``.
    ``label`` (``model``, ``note``) is what ``model_label`` reports for it."""
    PROVIDERS[name] = factory
    if label is not None:
        LABELS[name] = label


def get_chat_model(tenant=None, *, locale: str | None = None) -> ChatModel:
    """The configured chat model. ``tenant`` (and ``locale``, which wins) set the
    offline provider's language; the others take the language from the prompt."""
    name = settings.LLM_PROVIDER
    try:
        factory = PROVIDERS[name]
    except KeyError:
        raise ImproperlyConfigured(f"LLM_PROVIDER={name!r}; choose one of {', '.join(sorted(PROVIDERS))}") from None
    return ObservedChatModel(factory(tenant, locale=locale))


def model_label() -> dict:
    """What ``/health`` reports: the provider and the model name it will use."""
    name = settings.LLM_PROVIDER
    if name in LABELS:
        return {"provider": name, **LABELS[name]}
    label = {"provider": name, "model": settings.LLM_MODEL}
    if settings.LLM_FALLBACK_MODEL:
        label["fallback_model"] = settings.LLM_FALLBACK_MODEL
    if name == "openai":
        label["base_url"] = settings.LLM_BASE_URL
    return label
