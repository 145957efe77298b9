"""Documents, their chunks, and the per-tenant term statistics BM25 needs.

A chunk carries its tenant directly (not only through its document) so every
search filters on one indexed column. ``search_text`` is the chunk's analysed
text (lower-cased, Sastrawi-stemmed tokens joined by spaces); ``search_vector``
is generated from it with the ``simple`` configuration, because PostgreSQL has
no Indonesian stemmer and stemming is done once, in Python, the same way for
documents and queries (``knowledge.analysis``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

from tenants.models import Tenant, TenantOwned


class Document(TenantOwned):
    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    class Source(models.TextChoices):
        ENTRY = "entry", "API entry (upsert)"
        UPLOAD = "upload", "Uploaded file"
        IMPORT = "import", "Bulk import"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    source_kind = models.CharField(max_length=16, choices=Source.choices)
    file_type = models.CharField(max_length=16, help_text="Parser used: pdf, xlsx, csv, tsv, md, txt, entry.")
    original_name = models.CharField(max_length=500, blank=True)
    source_file = models.FileField(upload_to="kb/%Y/%m/", blank=True,
                                   help_text="The uploaded bytes, kept so the document can be re-processed.")
    content = models.TextField(blank=True, help_text="The text of an API entry (uploads keep their file instead).")
    checksum = models.CharField(max_length=64, help_text="SHA-256 of the content; identical content is not ingested twice.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    external_id = models.CharField(max_length=200, null=True, blank=True,
                                   help_text="The caller's id: upserting the same external_id updates in place.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Processing runs started since the document was last queued (a run the worker's time "
                             "limit or a crash stopped counts; knowledge.services.documents_recover gives up after "
                             "KB_PROCESS_MAX_ATTEMPTS).")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], condition=models.Q(external_id__isnull=False),
                                    name="kb_document_unique_external_id"),
        ]
        indexes = [models.Index(fields=["tenant", "checksum"], name="kb_document_checksum")]

    def __str__(self) -> str:
        return self.title


class EmbeddingField(VectorField):
    """The chunk vector, ``vector(EMBEDDING_DIMENSIONS)``. Its size is a deployment's
    setting, not part of the schema's history: migrations leave it out (0006), and
    ``kb_reembed --all-tenants --resize`` changes the column when the setting changes."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("dimensions", settings.EMBEDDING_DIMENSIONS)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("dimensions", None)
        return name, path, args, kwargs


class Chunk(TenantOwned):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField(help_text="Analysed tokens (the BM25 document length).")
    provenance = models.JSONField(default=dict, blank=True)
    embedding = EmbeddingField()
    embedding_model = models.CharField(max_length=200)
    search_text = models.TextField(help_text="Lower-cased, stemmed tokens of the text.")
    # Only chunks of tenants big enough for the HNSW plan are in the graph (the index's condition): a small
    # tenant is searched exactly and never reads it, and every chunk in the graph costs its inserts ~1 ms.
    in_hnsw = models.BooleanField(default=False, db_default=False,
                                  help_text="In the HNSW graph: every chunk of a tenant whose CorpusStats.in_hnsw is set.")
    # The terms plus one lexeme naming the tenant ("tenant" + md5 of its id): a keyword
    # query ANDs it in, so the GIN index itself returns only the tenant's chunks instead
    # of every tenant's matches for the heap to filter (btree_gin is not available).
    search_vector = models.GeneratedField(
        expression=models.Func(models.F("search_text"), models.F("tenant_id"),
                               template="to_tsvector('simple'::regconfig, %(expressions)s))",
                               arg_joiner=" || ' tenant' || md5(", output_field=SearchVectorField()),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["document_id", "position"]
        indexes = [
            # The b-tree the exact (small-tenant) vector scan and every tenant filter use.
            models.Index(fields=["tenant", "document"], name="kb_chunk_tenant_doc"),
            # A small pending list (migration 0004): every search scans all of it.
            GinIndex(fields=["search_vector"], name="kb_chunk_search_gin", gin_pending_list_limit=64),
            # Partial (migration 0009): only big tenants' chunks (knowledge.db.HNSW_INDEX_SQL makes the same).
            HnswIndex(name="kb_chunk_embedding_hnsw", fields=["embedding"], m=16, ef_construction=64,
                      opclasses=["vector_cosine_ops"], condition=models.Q(in_hnsw=True)),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"


class Term(TenantOwned):
    """Document frequency of one analysed term in one tenant's chunks: BM25's idf,
    and the vocabulary ``pg_trgm`` corrects typos against."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    term = models.CharField(max_length=100)
    df = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "term"], name="kb_term_unique")]
        indexes = [GinIndex(fields=["term"], opclasses=["gin_trgm_ops"], name="kb_term_trgm",
                            gin_pending_list_limit=64)]


class NextCorpusVersion(models.Func):
    """``nextval`` of the sequence every change to a tenant's chunks draws from."""

    template = "nextval('knowledge_corpus_version_seq')"
    output_field = models.BigIntegerField()

    def __init__(self):
        super().__init__()


class CorpusStats(TenantOwned):
    """One row per tenant: chunk count and total length, for BM25's N and avgdl,
    to choose the vector plan (exact scan for small tenants, HNSW for big, whose
    chunks are then in the graph: ``in_hnsw``) and the model of the vector side (``models``).
    ``version`` changes (from a sequence, so never back to an earlier value, even for
    a deleted and re-created tenant) whenever the tenant's chunks or their vectors
    do: processes that keep a tenant's vectors in memory compare it on every search."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+", primary_key=True)
    chunk_count = models.BigIntegerField(default=0)
    token_total = models.BigIntegerField(default=0)
    version = models.BigIntegerField(db_default=NextCorpusVersion(), editable=False)
    # Set, with every one of the tenant's chunks' in_hnsw, by the write that takes it past
    # selectors.vector.EXACT_SCAN_MAX_CHUNKS; never unset (a tenant that shrinks stays in the graph).
    in_hnsw = models.BooleanField(default=False, db_default=False, editable=False,
                                  help_text="The tenant's chunks are in the HNSW graph (it is big enough to search it).")
    # {embedding model: chunk count}: which models made the tenant's vectors. One model but after a change of
    # EMBEDDING_PROVIDER/EMBEDDING_MODEL_NAME, until `kb_reembed` has moved the tenant (a search compares vectors
    # of one model only: knowledge.selectors). Kept by the write path; a column default of {} (migration 0011).
    models = models.JSONField(default=dict, editable=False,
                              help_text="Chunks per embedding model: {model name: count}.")

    class Meta:
        verbose_name_plural = "corpus stats"
