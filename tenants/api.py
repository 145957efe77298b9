from __future__ import annotations

import re

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from agent_project.errors import ApiError
from agent_project.lib.encryption import mask
from tenants import hours
from tenants.auth import request_tenant, request_tenant_id
from tenants.models import ApiKey, Tenant
from tenants.sections import settings_sections
from tenants.services import tenant_settings_clean, tenant_upsert


_SLUG = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_RATE_PER_MINUTE = 1_000_000  # the columns are int4: a larger number was a database error, a 500


class ApiKeySummarySerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = ["prefix", "name", "state", "created_at", "last_used_at", "expires_at", "revoked_at"]

    def get_state(self, obj) -> str:
        return obj.state()


class TenantSettingsSerializer(serializers.Serializer):
    tenant_id = serializers.CharField(read_only=True, source="id")
    name = serializers.CharField(max_length=200, required=False)
    persona = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    sop = serializers.CharField(required=False, allow_blank=True, max_length=50000)
    locale = serializers.CharField(required=False, max_length=16)
    timezone = serializers.CharField(required=False, max_length=64)
    working_hours = serializers.JSONField(required=False, help_text='{"mon": [["09:00","17:00"]], ...} or "09:00-17:00"')
    holidays = serializers.JSONField(required=False, help_text='["2026-12-25", {"date": "2027-01-01", "name": "..."}]')
    api_key = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=200,
                                    help_text="On creation: empty or absent issues a random key, returned once.")
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=200,
                                       help_text="Where follow-ups and events are POSTed, signed with webhook_secret.")
    webhook_secret = serializers.CharField(required=False, write_only=True, min_length=16, max_length=128,
                                           help_text="HMAC-SHA256 key of X-Layan-Signature (generated if never set).")
    webhook_secret_hint = serializers.SerializerMethodField()
    rate_limit_per_minute = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_RATE_PER_MINUTE,
        help_text="Set by the installation (global key); a tenant key may only lower it (403 "
                  "rate_limit_raise_forbidden otherwise). The same for the chat and upload limits.")
    chat_rate_limit_per_minute = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                          max_value=MAX_RATE_PER_MINUTE)
    upload_rate_limit_per_minute = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                            max_value=MAX_RATE_PER_MINUTE)
    handoff_on_unanswered = serializers.BooleanField(
        required=False, help_text="When the assistant says it cannot help, hand the conversation to a person "
        "(default true). false: the bot keeps answering. A customer asking for a person is always handed over.")
    handoff_resume_minutes = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=525600,
        help_text="Minutes without an operator message (since the hand-over or the operator's last message) after "
        "which the customer's next message goes back to the bot (default 30); null or 0: never.")
    synonyms = serializers.JSONField(
        required=False, help_text='Groups of words this business and its customers use for the same thing: '
        '["kulkas refrigerator fridge", "gamis abaya"]. Knowledge search widens a customer\'s word the knowledge '
        "base never uses to the words of its group it does use (besides the built-in shop vocabulary).")
    # here: the sections other apps contribute (tenants.sections; get_fields puts them in this place)
    opening_status = serializers.SerializerMethodField()
    api_keys = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_fields(self):
        fields = {}
        for name, field in super().get_fields().items():
            if name == "opening_status":
                for section in settings_sections():
                    fields[section.name] = serializers.JSONField(required=False, help_text=section.help_text)
            fields[name] = field
        return fields

    def validate(self, attrs):
        return tenant_settings_clean(attrs)

    def get_opening_status(self, tenant) -> dict:
        return hours.opening_status(working_hours=tenant.working_hours, holidays=tenant.holidays,
                                    timezone=tenant.timezone, at=timezone.now()).as_dict()

    def get_webhook_secret_hint(self, tenant) -> str:
        return mask(tenant.webhook_secret)

    def to_representation(self, tenant):
        body = super().to_representation(tenant)
        for section in settings_sections():
            body[section.name] = section.read(tenant=tenant)
        return body

    def get_api_keys(self, tenant) -> list[dict]:
        return ApiKeySummarySerializer(ApiKey.objects.with_scope(tenant=tenant).all(), many=True).data


class TenantSettingsResponseSerializer(TenantSettingsSerializer):
    api_key = serializers.CharField(read_only=True, allow_null=True,
                                    help_text="The new key in full: shown only in the response that issued it.")


class TenantSettingsView(APIView):
    """``/tenants/{tenant_id}/settings``: the global key creates tenants; a tenant key reads and updates its own."""

    @extend_schema(responses=TenantSettingsResponseSerializer)
    def get(self, request, tenant_id: str):
        tenant = request_tenant(request, tenant_id)
        return Response(TenantSettingsSerializer(tenant).data)

    @extend_schema(request=TenantSettingsSerializer, responses={200: TenantSettingsResponseSerializer,
                                                                201: TenantSettingsResponseSerializer})
    def put(self, request, tenant_id: str):
        if not _SLUG.fullmatch(tenant_id):
            raise ApiError(422, "invalid_tenant_id", "tenant_id may use letters, digits, '-' and '_' (at most 64).")
        tenant_id = request_tenant_id(request, tenant_id)
        serializer = TenantSettingsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        api_key = data.pop("api_key", None)
        sections = {s.name: data.pop(s.name) for s in settings_sections() if s.name in data}
        tenant, created, plaintext = tenant_upsert(
            tenant_id=tenant_id, data=data, api_key=api_key, sections=sections, may_create=request.user.is_global
        )
        body = TenantSettingsSerializer(tenant).data
        body["api_key"] = plaintext
        return Response(body, status=201 if created else 200)

    patch = put

