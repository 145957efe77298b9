"""The seed's follow-up routes (``/followup/schedule``, ``/followup/pending``, ``/followup``)
plus one follow-up, cancel and retry. Views validate and call one service."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from agent_project.errors import ApiError
from agent_project.lib.ids import parse_id
from agent_project.pagination import Pagination, paginated_schema
from followups.models import FollowUp
from followups.selectors import followup_list
from followups.services import followup_cancel, followup_retry, followup_schedule
from tenants import hours
from tenants.viewsets import TenantAPIView, owned_or_404

_CHANNEL = re.compile(r"[a-z0-9_-]{1,32}")
#: Dates a follow-up may be scheduled at or listed by (PostgreSQL and Python both reach years 1-9999;
#: at the edges a time zone or a day added leaves that range).
MIN_YEAR, MAX_YEAR = 1970, 9998


class FollowUpSerializer(serializers.ModelSerializer):
    contact_id = serializers.IntegerField(read_only=True)
    conversation_id = serializers.IntegerField(read_only=True, allow_null=True)
    contact_name = serializers.CharField(source="contact.name", read_only=True)

    class Meta:
        model = FollowUp
        fields = ["id", "status", "contact_id", "contact_name", "channel", "user_id", "conversation_id",
                  "message", "variables", "text_sent", "text_origin", "scheduled_at", "next_attempt_at",
                  "respect_working_hours", "attempts", "last_error", "sent_at", "cancelled_at",
                  "idempotency_key", "created_by", "created_at", "updated_at"]
        read_only_fields = fields


class ScheduleSerializer(serializers.Serializer):
    contact_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    user_id = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200)
    channel = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=32,
                                    help_text="Needed with user_id (e.g. whatsapp, web); chooses the sender.")
    conversation_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    message = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=4000,
                                    help_text="Text, or a template with {name}, {first_name}, {phone}, {email}, "
                                              "{tenant_name} and your own variables. Empty: the AI writes it "
                                              "at send time.")
    variables = serializers.JSONField(required=False, help_text='Values for the template, e.g. {"order": "A-12"}')
    scheduled_at = serializers.CharField(required=False, allow_null=True, allow_blank=True,
                                         help_text="ISO 8601; without an offset it is the tenant's local time. "
                                                   "A past time means as soon as possible.")
    delay_minutes = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=527040)
    respect_working_hours = serializers.BooleanField(required=False, default=False)
    idempotency_key = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                            help_text="Repeat the call with the same key: no second follow-up.")
    tenant_id = serializers.CharField(required=False, help_text="Optional; must be the key's tenant.")

    def validate_channel(self, value):
        value = (value or "").strip().lower()
        if value and not _CHANNEL.fullmatch(value):
            raise serializers.ValidationError("Use lowercase letters, digits, '-' or '_' (e.g. whatsapp).")
        return value

    def validate_scheduled_at(self, value):
        if not value:
            return None
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise serializers.ValidationError("Not a date and time like 2026-12-01T09:30:00+07:00.")
        if not MIN_YEAR <= parsed.year <= MAX_YEAR:
            # year 1 in a zone east of UTC was stored as a BC timestamp nothing could read back
            raise serializers.ValidationError(f"The year must be between {MIN_YEAR} and {MAX_YEAR}.")
        return parsed


class FollowUpScheduleView(TenantAPIView):
    @extend_schema(request=ScheduleSerializer, responses={201: FollowUpSerializer, 200: FollowUpSerializer},
                   summary="Schedule a follow-up",
                   description="201 with the new follow-up; 200 with the existing one when idempotency_key repeats.")
    def post(self, request):
        serializer = ScheduleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        followup, created = followup_schedule(
            tenant=self.tenant,
            contact_id=data.get("contact_id"),
            user_id=data.get("user_id") or "",
            channel=data.get("channel") or "",
            conversation_id=data.get("conversation_id"),
            message=data.get("message") or "",
            variables=data.get("variables") or {},
            scheduled_at=data.get("scheduled_at"),
            delay_minutes=data.get("delay_minutes"),
            respect_working_hours=data.get("respect_working_hours", False),
            idempotency_key=data.get("idempotency_key") or "",
            created_by=request.user.label,
        )
        return Response(FollowUpSerializer(followup).data, status=201 if created else 200)


FOLLOWUP_PAGE = paginated_schema("PaginatedFollowUpList", FollowUpSerializer)


def _paginated(view, request, queryset):
    paginator = Pagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(FollowUpSerializer(page, many=True).data)


def _moment(request, name: str, tenant, *, end: bool) -> datetime | None:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return None
    try:
        day = parse_date(raw)  # first: Python reads "2026-12-01" as a datetime at midnight too
        value = None if day else parse_datetime(raw)
    except ValueError:
        value = day = None
    if value is None and day is None:
        raise ApiError(400, "invalid_date", f"'{name}' must be a date (2026-12-01) or a date and time.")
    if not MIN_YEAR <= (day or value).year <= MAX_YEAR:  # a day after 9999-12-31 overflowed: a 500
        raise ApiError(400, "invalid_date", f"'{name}' must be in the years {MIN_YEAR}-{MAX_YEAR}.")
    zone = hours.get_zone(tenant.timezone)
    if day is not None:  # a whole local day: "to=2026-12-01" includes that day
        value = datetime.combine(day, time(0), tzinfo=zone)
        if end:
            value += timedelta(days=1)
    elif timezone.is_naive(value):
        value = value.replace(tzinfo=zone)
    return value


class FollowUpListView(TenantAPIView):
    @extend_schema(
        responses=FOLLOWUP_PAGE, summary="List follow-ups", operation_id="followup_list",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=FollowUp.Status.values),
            OpenApiParameter("contact_id", OpenApiTypes.INT),
            OpenApiParameter("from", OpenApiTypes.STR, description="scheduled at or after (date or date-time)"),
            OpenApiParameter("to", OpenApiTypes.STR, description="scheduled before; a date includes that day"),
            OpenApiParameter("page", OpenApiTypes.INT), OpenApiParameter("page_size", OpenApiTypes.INT),
        ],
    )
    def get(self, request):
        status = request.query_params.get("status", "").strip().lower() or None
        if status and status not in FollowUp.Status.values:
            raise ApiError(400, "invalid_status", f"status must be one of {', '.join(FollowUp.Status.values)}.")
        contact_id = request.query_params.get("contact_id", "").strip() or None
        if contact_id is not None:
            contact_id = parse_id(contact_id)
            if contact_id is None:
                raise ApiError(400, "invalid_contact_id", "contact_id must be a number.")
        scheduled_from = _moment(request, "from", self.tenant, end=False)
        scheduled_to = _moment(request, "to", self.tenant, end=True)
        qs = followup_list(status=status, contact_id=contact_id, scheduled_from=scheduled_from,
                           scheduled_to=scheduled_to)
        return _paginated(self, request, qs)


class FollowUpPendingView(TenantAPIView):
    @extend_schema(responses=FOLLOWUP_PAGE, summary="The pending queue, soonest first",
                   parameters=[OpenApiParameter("page", OpenApiTypes.INT),
                               OpenApiParameter("page_size", OpenApiTypes.INT)])
    def get(self, request):
        return _paginated(self, request, followup_list(status=FollowUp.Status.PENDING))


class FollowUpDetailView(TenantAPIView):
    @extend_schema(responses=FollowUpSerializer, summary="One follow-up")
    def get(self, request, pk: str):
        return Response(FollowUpSerializer(owned_or_404(FollowUp.objects.all(), "followup", pk=pk)).data)


class FollowUpCancelView(TenantAPIView):
    @extend_schema(request=None, responses=FollowUpSerializer, summary="Cancel a pending follow-up")
    def post(self, request, pk: str):
        followup = owned_or_404(FollowUp.objects.all(), "followup", pk=pk)
        return Response(FollowUpSerializer(followup_cancel(followup=followup)).data)


class FollowUpRetryView(TenantAPIView):
    @extend_schema(request=None, responses=FollowUpSerializer,
                   summary="Send a failed or cancelled follow-up again (or a pending one now)")
    def post(self, request, pk: str):
        followup = owned_or_404(FollowUp.objects.all(), "followup", pk=pk)
        return Response(FollowUpSerializer(followup_retry(followup=followup)).data)
