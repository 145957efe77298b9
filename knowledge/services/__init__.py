"""Writing the knowledge base, one module per flow:

- ``files``: uploads (API, admin) and ``kb_import``'s bulk import of files;
- ``entries``: text entries created or updated through ``POST /kb/upsert``;
- ``processing``: the worker's processing of a queued document, its recovery, re-processing, deletion;
- ``reembed``: re-embedding chunks for a new model or a vector column of a new size;
- ``stats``: checking and rebuilding the tenant's BM25 statistics, re-analysing chunks;
- ``chunks``: the writing core they share (embed and analyse, swap a document's chunks, keep the
  statistics in step, the lock order).

Code inside ``knowledge`` imports from those modules. The names below are the ones used from
outside the app (other apps' tests seed knowledge with ``entries_upsert``; ``benchmarks/`` drives
the ingestion path), kept importable from ``knowledge.services``.
"""

from knowledge.services.chunks import EMBED_BATCH, chunk_drafts, entry_sections
from knowledge.services.entries import entries_upsert
from knowledge.services.files import document_import, document_upload, documents_import

__all__ = ["EMBED_BATCH", "chunk_drafts", "document_import", "document_upload", "documents_import", "entries_upsert",
           "entry_sections"]
