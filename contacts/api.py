"""HTTP routes of contacts and their history. Views validate, services act."""

from __future__ import annotations

import json
from datetime import timedelta

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from agent_project.errors import ApiError
from agent_project.lib.ids import MAX_ID, parse_id
from agent_project.pagination import Pagination, paginated_schema
from contacts import selectors
from contacts.links import conversation_owned_or_404
from contacts.models import Contact, ContactLog
from contacts.services.chat import contact_log_record
from contacts.services.erasure import contact_delete
from contacts.services.merge import contact_merge
from contacts.services.upsert import contact_update, contact_upsert
from tenants.scoping import tenant_scope
from tenants.viewsets import TenantAPIView, owned_or_404


class IdentitySerializer(serializers.Serializer):
    channel = serializers.CharField(max_length=32)
    external_id = serializers.CharField(max_length=200)


class ExternalIdsField(serializers.JSONField):
    """``{"whatsapp": "6281…", "telegram": "12345"}`` or a list of ``{channel, external_id}``."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if isinstance(data, dict):
            if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in data.values()):
                raise serializers.ValidationError("Each external id must be a string.")
            return {str(k): str(v) for k, v in data.items()}
        if isinstance(data, list) and all(isinstance(i, dict) for i in data):
            return [IdentitySerializer().run_validation(i) for i in data]
        raise serializers.ValidationError('Give {"channel": "id", ...} or [{"channel": ..., "external_id": ...}].')


class ContactWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True,
                                  help_text="Any common spelling; stored as E.164 "
                                            "(default region from the tenant's locale).")
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, allow_null=True)
    external_ids = ExternalIdsField(required=False, help_text='{"whatsapp": "6281234567890", "telegram": "12345"}')
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    attributes = serializers.DictField(required=False)
    opted_out = serializers.BooleanField(required=False, help_text="True: no follow-ups are sent.")


class ContactSerializer(serializers.ModelSerializer):
    external_ids = serializers.SerializerMethodField()

    class Meta:
        model = Contact
        fields = ["id", "name", "phone", "email", "external_ids", "tags", "attributes", "opted_out",
                  "first_seen_at", "last_seen_at", "created_at", "updated_at"]

    def get_external_ids(self, contact) -> list[dict]:
        return [{"channel": i.channel, "external_id": i.external_id}
                for i in sorted(contact.identities.all(), key=lambda i: (i.channel, i.external_id))]


class ContactUpsertResponseSerializer(ContactSerializer):
    created = serializers.BooleanField(help_text="True: a new contact (201). False: an existing one was updated (200).")
    matched_by = serializers.ListField(child=serializers.CharField(),
                                       help_text='What matched the existing contact: "phone", "email", '
                                                 '"external_id:<channel>".')

    class Meta(ContactSerializer.Meta):
        fields = [*ContactSerializer.Meta.fields, "created", "matched_by"]


class ContactDetailSerializer(ContactSerializer):
    counts = serializers.SerializerMethodField()

    class Meta(ContactSerializer.Meta):
        fields = [*ContactSerializer.Meta.fields, "counts"]

    def get_counts(self, contact) -> dict[str, int]:
        return selectors.contact_counts(contact=contact)


class ContactLogSerializer(serializers.ModelSerializer):
    contact_id = serializers.IntegerField()

    class Meta:
        model = ContactLog
        fields = ["id", "contact_id", "role", "content", "channel", "at", "external_message_id",
                  "conversation_id", "created_at"]


_DIRECTIONS = {"inbound": "user", "in": "user", "outbound": "assistant", "out": "assistant"}
AT_MAX_AHEAD = timedelta(minutes=10)  # a sender's clock may run a little ahead


class ContactLogWriteSerializer(serializers.Serializer):
    contact_id = serializers.IntegerField()
    role = serializers.ChoiceField(choices=ContactLog.ROLES, required=False)
    direction = serializers.ChoiceField(choices=sorted(_DIRECTIONS), required=False,
                                        help_text="Alternative to role: inbound = user, outbound = assistant.")
    content = serializers.CharField(max_length=100_000, trim_whitespace=False)
    channel = serializers.CharField(max_length=32)
    at = serializers.DateTimeField(required=False, help_text="Defaults to now.")
    external_message_id = serializers.CharField(max_length=200, required=False, allow_null=True,
                                                help_text="The channel's message id; a repeat is not stored twice.")
    conversation_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_ID,
                                               help_text="One of the tenant's conversations (404 otherwise).")

    def validate_at(self, value):
        # _touch only moves last_seen_at forward: a date in the future would stay there for good
        if value > timezone.now() + AT_MAX_AHEAD or value.year < 1970:
            raise serializers.ValidationError("at must be a moment from 1970 up to now (a few minutes of clock "
                                              "difference allowed).")
        return value

    def validate(self, attrs):
        direction = attrs.pop("direction", None)
        if "role" not in attrs:
            if direction is None:
                raise serializers.ValidationError({"role": "Give role (user/assistant/operator/system) or direction."})
            attrs["role"] = _DIRECTIONS[direction]
        return attrs


class ContactListQuery(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, help_text="Part of the name, phone or e-mail.")
    tag = serializers.CharField(required=False, allow_blank=True)
    last_seen_after = serializers.DateTimeField(required=False)
    last_seen_before = serializers.DateTimeField(required=False)


class LogListQuery(serializers.Serializer):
    contact_id = serializers.IntegerField(required=False)
    channel = serializers.CharField(required=False, allow_blank=True)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


def _query(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _page(view, qs, serializer_class):
    paginator = Pagination()
    page = paginator.paginate_queryset(qs, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _actor(request) -> str:
    return getattr(request.user, "label", "") or ""


def _contact(view, pk) -> Contact:
    return owned_or_404(Contact.objects.filter(tenant=view.tenant).prefetch_related("identities"), "contact", pk=pk)


_PAGE_PARAMS = [OpenApiParameter("page", int), OpenApiParameter("page_size", int, description="At most 200.")]


class ContactsView(TenantAPIView):
    """``/contacts``: list and search; create or update (upsert)."""

    @extend_schema(parameters=[ContactListQuery, *_PAGE_PARAMS],
                   responses=paginated_schema("PaginatedContactList", ContactSerializer), operation_id="contacts_list")
    def get(self, request):
        query = _query(ContactListQuery, request)
        return _page(self, selectors.contact_list(tenant=self.tenant, **query), ContactSerializer)

    @extend_schema(request=ContactWriteSerializer,
                   responses={201: ContactUpsertResponseSerializer, 200: ContactUpsertResponseSerializer,
                              409: OpenApiResponse(description="contact_conflict: the keys match different contacts"),
                              422: OpenApiResponse(description="invalid_phone / invalid_email / contact_key_required")})
    def post(self, request):
        serializer = ContactWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = contact_upsert(tenant=self.tenant, data=serializer.validated_data)
        contact = Contact.objects.prefetch_related("identities").get(pk=result.contact.pk)
        body = dict(ContactSerializer(contact).data, created=result.created, matched_by=result.matched_by)
        return Response(body, status=201 if result.created else 200)


class ContactDetailView(TenantAPIView):
    """``/contacts/{id}``: read (with counts), update, erase."""

    @extend_schema(responses=ContactDetailSerializer)
    def get(self, request, pk):
        return Response(ContactDetailSerializer(_contact(self, pk)).data)

    @extend_schema(request=ContactWriteSerializer, responses=ContactDetailSerializer)
    def patch(self, request, pk):
        contact = _contact(self, pk)
        serializer = ContactWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        contact_update(contact=contact, data=serializer.validated_data)
        return Response(ContactDetailSerializer(_contact(self, pk)).data)

    @extend_schema(
        parameters=[OpenApiParameter("reason", str, description="Why (e.g. a data-subject request); recorded.")],
        responses={200: inline_serializer("ContactDeleted", {
            "deleted": serializers.BooleanField(), "contact_id": serializers.IntegerField(),
            "deletion_id": serializers.IntegerField(),
            "removed": serializers.DictField(child=serializers.IntegerField()),
        })})
    def delete(self, request, pk):
        contact = _contact(self, pk)
        record = contact_delete(contact=contact, actor=_actor(request),
                                         reason=request.query_params.get("reason", ""))
        return Response({"deleted": True, "contact_id": record.contact_id, "deletion_id": record.pk,
                         "removed": record.removed})


class ContactMergeView(TenantAPIView):
    """``/contacts/{id}/merge``: fold ``source_id`` into this contact."""

    @extend_schema(
        request=inline_serializer("ContactMergeRequest", {"source_id": serializers.IntegerField(
            help_text="The contact merged into this one, then removed.")}),
        responses={200: inline_serializer("ContactMerged", {
            "contact": ContactDetailSerializer(), "merged_contact_id": serializers.IntegerField(),
            "moved": serializers.DictField(child=serializers.IntegerField())})})
    def post(self, request, pk):
        source_id = request.data.get("source_id") if isinstance(request.data, dict) else None
        source_id = parse_id(source_id)
        if source_id is None:
            raise ApiError(400, "validation_error", "source_id (the contact to merge into this one) is required.",
                           details={"source_id": ["An integer id is required."]})
        target = _contact(self, pk)
        source = _contact(self, source_id)
        merge = contact_merge(target=target, source=source, actor=_actor(request))
        return Response({"contact": ContactDetailSerializer(_contact(self, pk)).data,
                         "merged_contact_id": merge.source_contact_id, "moved": merge.moved})


class ContactLogsView(TenantAPIView):
    """``/contacts/logs``: the conversation history, newest first; append an entry."""

    @extend_schema(parameters=[LogListQuery, *_PAGE_PARAMS],
                   responses=paginated_schema("PaginatedContactLogList", ContactLogSerializer))
    def get(self, request):
        query = _query(LogListQuery, request)
        if "contact_id" in query:
            # Another tenant's contact: 404, not an empty page. Only its existence is needed here.
            owned_or_404(Contact.objects.filter(tenant=self.tenant).only("pk"), "contact", pk=query["contact_id"])
        return _page(self, selectors.contact_log_list(tenant=self.tenant, **query), ContactLogSerializer)

    @extend_schema(request=ContactLogWriteSerializer,
                   responses={201: ContactLogSerializer, 200: ContactLogSerializer})
    def post(self, request):
        serializer = ContactLogWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        contact = _contact(self, data.pop("contact_id"))
        if data.get("conversation_id") is not None:  # another tenant's (or no) conversation: 404, as for contacts
            conversation_owned_or_404(tenant=self.tenant, conversation_id=data["conversation_id"])
        log = contact_log_record(tenant=self.tenant, contact=contact, **data)
        return Response(ContactLogSerializer(log).data, status=201 if log.was_created else 200)


class CsvRenderer(BaseRenderer):
    """Lets a client send ``Accept: text/csv``; the CSV itself is streamed by the view."""

    media_type = "text/csv"
    format = "csv"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode()  # only errors reach a renderer here


class ContactExportView(TenantAPIView):
    """``/contacts/export``: every contact (or a search's result) as CSV."""

    renderer_classes = [JSONRenderer, CsvRenderer]

    @extend_schema(parameters=[ContactListQuery],
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR,
                                                                 description="CSV, one contact a line")})
    def get(self, request):
        query = _query(ContactListQuery, request)
        tenant = self.tenant

        def lines():
            # Streaming runs after the view returned and its scope closed: open our own.
            with tenant_scope(tenant):
                yield from selectors.contact_csv_lines(selectors.contact_list(tenant=tenant, **query))

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="contacts-{tenant.pk}-{stamp}.csv"'
        return response
