"""Knowledge-base routes (the seed's paths): upsert, upload, documents, search."""

from __future__ import annotations

import time

from dataclasses import asdict

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from agent_project.errors import ApiError
from knowledge import selectors
from knowledge.services.entries import entries_upsert
from knowledge.services.files import document_upload, upload_limit
from knowledge.services.processing import document_delete
from knowledge.ingestion.parsers import SUPPORTED_TYPES
from knowledge.models import Chunk, Document
from tenants.viewsets import TenantAPIView, TenantViewSet, owned_or_404

MAX_ENTRIES = 100
MAX_DETAIL_CHUNKS = 500
MAX_TAGS, MAX_TAG_CHARS = 50, 64  # Document.tags is varchar(64)[]


def comma_tags(text: str) -> list[str]:
    """Comma-separated tags (an upload's form field, here and in the admin), stripped, repeats
    dropped; ``ValueError`` with a readable reason past the limits (the column would cut a
    longer tag)."""
    tags = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    too_long = [t for t in tags if len(t) > MAX_TAG_CHARS]
    if too_long:
        raise ValueError(f"Each tag may be at most {MAX_TAG_CHARS} characters ({too_long[0][:20]}… has "
                         f"{len(too_long[0])}).")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"At most {MAX_TAGS} tags (got {len(tags)}).")
    return tags
MAX_CHUNK_OFFSET = 2**31 - 1  # chunk positions are int4


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "title", "source_kind", "file_type", "original_name", "status", "error", "chunk_count",
                  "tags", "metadata", "external_id", "checksum", "created_at", "updated_at", "processed_at"]
        read_only_fields = fields


class ChunkSerializer(serializers.ModelSerializer):
    class Meta:
        model = Chunk
        fields = ["id", "position", "text", "token_count", "provenance", "embedding_model"]
        read_only_fields = fields


class DocumentDetailSerializer(DocumentSerializer):
    """A long document's chunks come in pages: ``?chunks_offset=<chunks_next_offset>``."""

    chunks = serializers.SerializerMethodField()
    chunks_offset = serializers.SerializerMethodField()
    chunks_next_offset = serializers.SerializerMethodField()

    class Meta(DocumentSerializer.Meta):
        fields = [*DocumentSerializer.Meta.fields, "chunks", "chunks_offset", "chunks_next_offset"]
        read_only_fields = fields

    def _window(self) -> tuple[int, int]:
        return self.context.get("chunks_window", (0, MAX_DETAIL_CHUNKS))

    def get_chunks(self, document) -> list[dict]:
        offset, limit = self._window()
        chunks = Chunk.objects.filter(document=document).defer("embedding", "search_text", "search_vector")
        return ChunkSerializer(chunks.order_by("position")[offset:offset + limit], many=True).data

    def get_chunks_offset(self, document) -> int:
        return self._window()[0]

    def get_chunks_next_offset(self, document) -> int | None:
        following = sum(self._window())
        return following if following < document.chunk_count else None


class EntrySerializer(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    content = serializers.CharField(max_length=200_000)
    tags = serializers.ListField(child=serializers.CharField(max_length=MAX_TAG_CHARS), required=False,
                                 max_length=MAX_TAGS)
    metadata = serializers.DictField(required=False)
    external_id = serializers.CharField(max_length=200, required=False, allow_null=True, allow_blank=True)


class UpsertSerializer(serializers.Serializer):
    """Either one entry's fields at the top level or ``entries``: a list of them."""

    entries = EntrySerializer(many=True, required=False, max_length=MAX_ENTRIES, allow_empty=False)
    title = serializers.CharField(max_length=300, required=False)
    content = serializers.CharField(max_length=200_000, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=MAX_TAG_CHARS), required=False,
                                 max_length=MAX_TAGS)
    metadata = serializers.DictField(required=False)
    external_id = serializers.CharField(max_length=200, required=False, allow_null=True, allow_blank=True)
    tenant_id = serializers.CharField(required=False, help_text="Optional; must be the key's tenant.")

    def validate(self, attrs):
        if attrs.get("entries"):
            if "title" in attrs or "content" in attrs:
                raise serializers.ValidationError("Send either one entry (title, content) or entries, not both.")
            entries = attrs["entries"]
        else:
            missing = [f for f in ("title", "content") if not attrs.get(f)]
            if missing:
                raise serializers.ValidationError({f: ["This field is required."] for f in missing})
            entries = [{k: v for k, v in attrs.items() if k in EntrySerializer().fields}]
        ids = [e.get("external_id") for e in entries if e.get("external_id")]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError({"entries": ["external_id values must be unique in one request."]})
        return {"entries": entries, "single": not attrs.get("entries")}


class UpsertResultSerializer(DocumentSerializer):
    action = serializers.CharField(help_text="created | updated | unchanged")

    class Meta(DocumentSerializer.Meta):
        fields = ["action", *DocumentSerializer.Meta.fields]
        read_only_fields = fields


def _result_data(result: dict) -> dict:
    return {"action": result["action"], **DocumentSerializer(result["document"]).data}


class KbUpsertView(TenantAPIView):
    # JSON only, as /chat: the body limits (depth, unstorable text; agent_project/limits.py) are checked on
    # JSON bodies, and a form-encoded body had passed by them. Anything else answers 415.
    parser_classes = [JSONParser]

    @extend_schema(
        request=UpsertSerializer,
        responses={201: UpsertResultSerializer, 200: UpsertResultSerializer},
        description="Create or update knowledge entries. The same `external_id` updates in place; unchanged "
                    "content is not re-embedded. With `entries`, the answer is `{\"results\": [...]}`.",
    )
    def post(self, request):
        serializer = UpsertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        results = entries_upsert(tenant=self.tenant, entries=serializer.validated_data["entries"])
        code = status.HTTP_201_CREATED if any(r["action"] == "created" for r in results) else status.HTTP_200_OK
        if serializer.validated_data["single"]:
            return Response(_result_data(results[0]), status=code)
        return Response({"results": [_result_data(r) for r in results]}, status=code)


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text=f"One of: {', '.join('.' + t for t in SUPPORTED_TYPES)}")
    title = serializers.CharField(max_length=300, required=False, allow_blank=True)
    tags = serializers.CharField(required=False, allow_blank=True, help_text="Comma-separated (at most 50, each "
                                 "at most 64 characters, as for /kb/upsert).")

    def validate_tags(self, value: str) -> list[str]:
        try:
            return comma_tags(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class UploadResultSerializer(DocumentSerializer):
    outcome = serializers.CharField(help_text="created (201) | queued (202) | duplicate (200)")

    class Meta(DocumentSerializer.Meta):
        fields = ["outcome", *DocumentSerializer.Meta.fields]
        read_only_fields = fields


class KbUploadView(TenantAPIView):
    throttle_scope = "upload"  # the stricter per-tenant upload rate limit (tenants/throttling.py)
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: UploadResultSerializer, 202: UploadResultSerializer, 200: UploadResultSerializer,
                   413: OpenApiResponse(description="file_too_large"),
                   415: OpenApiResponse(description="unsupported_file_type (details.supported lists types)"),
                   422: OpenApiResponse(description="pdf_encrypted, pdf_too_large, file_unreadable, "
                                                    "empty_document, too_many_pages, xlsx_too_large, too_many_rows, "
                                                    "too_many_columns, too_many_cells")},
        description="Small files are processed in the request (201); large ones are checked (type, size, a PDF's "
                    "encryption and pages, a workbook's zip, text that decodes) and queued (202) — poll "
                    "`GET /kb/documents/{id}`. Identical content already stored answers 200 `duplicate`.",
    )
    def post(self, request):
        serializer = UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        limit = upload_limit()
        if upload.size > limit:  # refuse before reading it into memory
            raise ApiError(413, "file_too_large", f"The file is {upload.size} bytes; the limit is {limit}.",
                           {"bytes": upload.size, "limit": limit})
        tags = serializer.validated_data.get("tags") or []
        result = document_upload(tenant=self.tenant, filename=upload.name, data=upload.read(),
                                 title=serializer.validated_data.get("title") or "", tags=tags)
        code = {"created": 201, "queued": 202, "duplicate": 200}[result.outcome]
        return Response({"outcome": result.outcome, **DocumentSerializer(result.document).data}, status=code)


class DocumentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantViewSet):
    serializer_class = DocumentSerializer

    def scoped_queryset(self):
        queryset = Document.objects.all()
        for field in ("status", "source_kind", "file_type", "external_id"):
            if self.request.query_params.get(field):
                queryset = queryset.filter(**{field: self.request.query_params[field]})
        if self.request.query_params.get("tag"):
            queryset = queryset.filter(tags__contains=[self.request.query_params["tag"]])
        return queryset

    def get_serializer_class(self):
        return DocumentDetailSerializer if self.action == "retrieve" else DocumentSerializer

    def get_object(self):
        return owned_or_404(self.get_queryset(), "document", pk=self.kwargs["pk"])

    @extend_schema(
        responses=DocumentDetailSerializer,
        parameters=[OpenApiParameter("chunks_offset", int, description="First chunk position to return (default 0)"),
                    OpenApiParameter("chunks_limit", int,
                                     description=f"Chunks to return, 1-{MAX_DETAIL_CHUNKS} (default {MAX_DETAIL_CHUNKS})")],
        description="A document with its status, error and chunks (a page of them: `chunks_next_offset` is the "
                    "next page's `chunks_offset`, null after the last).")
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.action == "retrieve":
            context["chunks_window"] = (self._query_int("chunks_offset", 0, 0, MAX_CHUNK_OFFSET),
                                        self._query_int("chunks_limit", MAX_DETAIL_CHUNKS, 1, MAX_DETAIL_CHUNKS))
        return context

    def _query_int(self, name: str, default: int, low: int, high: int | None) -> int:
        raw = self.request.query_params.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            bounds = f"{low}-{high}" if high is not None else f"≥ {low}"
            raise ApiError(400, "invalid_filter", f"{name} must be a whole number {bounds}.")
        return value

    @extend_schema(responses={204: None}, description="Delete a document and its chunks.")
    def destroy(self, request, *args, **kwargs):
        document_delete(document=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class SearchFiltersSerializer(serializers.Serializer):
    document_id = serializers.IntegerField(required=False)
    document_ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=500)
    tags = serializers.ListField(child=serializers.CharField(max_length=MAX_TAG_CHARS), required=False,
                                 max_length=MAX_TAGS)
    source_kind = serializers.ChoiceField(choices=Document.Source.choices, required=False)
    file_type = serializers.CharField(max_length=16, required=False)


class SearchSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=2000)
    k = serializers.IntegerField(min_value=1, max_value=selectors.MAX_K, default=5)
    filters = SearchFiltersSerializer(required=False)
    tenant_id = serializers.CharField(required=False, help_text="Optional; must be the key's tenant.")


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    title = serializers.CharField()
    text = serializers.CharField()
    provenance = serializers.DictField()
    score = serializers.FloatField(help_text="Fused score in [0, 1].")
    scores = serializers.DictField(help_text="keyword, bm25, vector (cosine), their ranks and the vector plan.")
    relevant = serializers.BooleanField(help_text="score >= relevance_threshold")


class KbSearchView(TenantAPIView):
    @extend_schema(
        request=SearchSerializer,
        responses=inline_serializer("SearchResponse", {
            "query": serializers.CharField(),
            "relevance_threshold": serializers.FloatField(),
            "hits": SearchHitSerializer(many=True),
            "timings": inline_serializer("SearchTimings", {
                "embedding_ms": serializers.FloatField(help_text="Embedding the query (0 when it was cached)."),
                "total_ms": serializers.FloatField(help_text="The whole search."),
            }),
        }),
        description="Hybrid (BM25 + vector) search over the tenant's knowledge base, as the agent sees it.",
    )
    def post(self, request):
        serializer = SearchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        timings: dict = {}
        started = time.perf_counter()
        hits = selectors.chunk_search(tenant=self.tenant, query=data["query"], k=data["k"],
                                      filters=dict(data.get("filters") or {}), timings=timings)
        timings["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return Response({
            "query": data["query"],
            "relevance_threshold": selectors.RELEVANCE_THRESHOLD,
            "hits": [{**asdict(h), "relevant": h.score >= selectors.RELEVANCE_THRESHOLD} for h in hits],
            "timings": timings,
        })

