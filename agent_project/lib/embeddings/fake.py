"""Deterministic hashed bag-of-words vectors for tests: texts sharing words are near,
unrelated texts are not. It records what it was asked, so tests can tell whether something
was (re-)embedded."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from agent_project.lib.embeddings.base import BaseEmbedder


class FakeEmbedder(BaseEmbedder):
    """Hashed bag of words: texts sharing words are near, unrelated texts are not.
    Deterministic across processes (blake2b, not Python's salted ``hash``)."""

    def __init__(self, dimensions: int, variant: str = ""):
        super().__init__()
        # A variant is another "model": same words, other directions (tests of a model change).
        self.variant = variant
        self.name = f"fake-{variant}-{dimensions}" if variant else f"fake-{dimensions}"
        self.dimensions = dimensions
        self.calls: list[tuple[str, int]] = []  # (kind, number of texts)

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        self.calls.append((kind, len(texts)))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b((self.variant + word).encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dimensions
                out[i, index] += 1.0 if digest[4] & 1 else -1.0
            if not out[i].any():
                out[i, 0] = 1.0
        return out
