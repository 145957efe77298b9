"""Knowledge tests use the deterministic fake embedder unless a test asks for the
real local model (``local_embedder``); uploads land in a temporary MEDIA_ROOT."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


@pytest.fixture(autouse=True)
def _kb_settings(settings, tmp_path):
    settings.EMBEDDING_PROVIDER = "fake"
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def local_embedder(settings):
    settings.EMBEDDING_PROVIDER = "local"
    from agent_project.lib.embeddings import get_embedder

    return get_embedder()


@pytest.fixture
def embedder():
    from agent_project.lib.embeddings import get_embedder

    return get_embedder()
