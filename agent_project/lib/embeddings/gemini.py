"""google-genai ``gemini-embedding-001`` with document/query task types, at most 100 texts
per call, ``output_dimensionality = EMBEDDING_DIMENSIONS`` and re-normalisation (truncated
Matryoshka vectors are not unit length), retries with backoff on 408/429/5xx.
``GEMINI_BASE_URL`` points the client at a local fake in tests."""

from __future__ import annotations

import functools

import numpy as np

from agent_project.lib.embeddings.base import BaseEmbedder, EmbeddingError


class GeminiEmbedder(BaseEmbedder):
    model = "gemini-embedding-001"
    max_batch = 100  # the API's limit per batchEmbedContents call
    task_types = {"document": "RETRIEVAL_DOCUMENT", "query": "RETRIEVAL_QUERY"}
    # A query embeds while a customer waits: two tries within ~10 s, then the search goes on
    # by keyword (knowledge.selectors). Documents are background work: the full retry budget.
    query_attempts = 2
    query_timeout_ms = 10_000

    def __init__(self, *, api_key: str, dimensions: int, base_url: str = "", model: str = "",
                 attempts: int = 5, initial_delay: float = 1.0, timeout_ms: int = 60_000):
        super().__init__()
        from google import genai
        from google.genai import types

        if not api_key:
            raise EmbeddingError("EMBEDDING_PROVIDER=gemini needs GEMINI_API_KEY")
        self._types = types

        def client(attempts: int, timeout: int):
            return genai.Client(api_key=api_key, http_options=types.HttpOptions(
                base_url=base_url or None,
                timeout=timeout,
                retry_options=types.HttpRetryOptions(
                    attempts=attempts, initial_delay=initial_delay, max_delay=30.0, exp_base=2.0,
                    http_status_codes=[408, 429, 500, 502, 503, 504],
                ),
            ))

        self.client = client(attempts, timeout_ms)
        self.query_client = client(min(attempts, self.query_attempts), min(timeout_ms, self.query_timeout_ms))
        self.model = model or self.model
        self.name = f"gemini:{self.model}:{dimensions}"
        self.dimensions = dimensions

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        from google.genai import errors

        config = self._types.EmbedContentConfig(task_type=self.task_types[kind], output_dimensionality=self.dimensions)
        client = self.query_client if kind == "query" else self.client
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.max_batch):
            batch = texts[start:start + self.max_batch]
            try:
                response = client.models.embed_content(model=self.model, contents=batch, config=config)
            except errors.APIError as exc:
                raise EmbeddingError(f"Gemini embedding failed: {exc.code} {exc.message}") from exc
            except _transport_errors() as exc:  # unreachable, refused, timed out
                raise EmbeddingError(f"Gemini embedding failed: {exc.__class__.__name__}: {exc}") from exc
            embeddings = response.embeddings or []
            if len(embeddings) != len(batch):
                raise EmbeddingError(f"Gemini returned {len(embeddings)} embeddings for {len(batch)} texts")
            rows.extend(e.values for e in embeddings)
        return np.asarray(rows, dtype=np.float32)


@functools.cache
def _transport_errors() -> tuple[type[Exception], ...]:
    """google-genai talks through httpx or its fork httpx2 (separate classes), whichever is installed."""
    import importlib

    found = []
    for name in ("httpx", "httpx2"):
        try:
            found.append(importlib.import_module(name).HTTPError)
        except ImportError:
            pass
    return tuple(found)
