"""Channel webhooks (called by Meta and Telegram) and the operator routes.

The webhooks carry no ``X-API-Key``: the tenant comes from the path and the request
is authenticated by the platform's signature (WhatsApp ``X-Hub-Signature-256``, HMAC
of the raw body with the tenant's app secret) or secret header (Telegram
``X-Telegram-Bot-Api-Secret-Token``). A request that fails the check is answered
401 (no signature) or 403 (wrong signature) before anything is read or stored, so
tenant A's credentials on tenant B's path change nothing. An unknown tenant and a
tenant without the channel answer the same 404. Accepted deliveries are stored and
handed to a django-q2 task; the platform gets its 200 at once.
"""

from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from agent_project.errors import ApiError
from channels import telegram, whatsapp
from channels.base import TELEGRAM, WHATSAPP
from channels.handoff.operator import operator_reply
from channels.handoff.status import conversation_status_set
from channels.inbound import inbound_enqueue, inbound_record
from channels.models import ChannelConfig
from conversations.models import Conversation, Message
from tenants.models import Tenant
from tenants.scoping import tenant_scope
from tenants.viewsets import TenantAPIView, owned_or_404


def _config_for(tenant_id: str, channel: str) -> tuple[Tenant, ChannelConfig]:
    """The tenant named by the path and its ready channel; one answer for every miss."""
    tenant = Tenant.objects.filter(pk=tenant_id, is_active=True).first()
    config = None
    if tenant is not None:
        with tenant_scope(tenant):
            config = ChannelConfig.objects.filter(tenant=tenant).first()
    ready = config is not None and (config.whatsapp_ready if channel == WHATSAPP else config.telegram_ready)
    if not ready:
        raise ApiError(404, "channel_not_configured", f"No {channel} channel is set up at this address.")
    return tenant, config


def _enqueue(tenant: Tenant, channel: str, items) -> dict:
    created = duplicates = 0
    for item in items:
        row, was_created = inbound_record(tenant=tenant, channel=channel, item=item)
        if was_created:
            created += 1
            inbound_enqueue(row.pk, channel=channel)
        else:
            duplicates += 1
    return {"received": created, "duplicates": duplicates}


def _json_body(request):
    try:
        return json.loads(request.body or b"")
    except ValueError:
        raise ApiError(400, "malformed_request", "The body is not JSON.") from None


_ACK = inline_serializer("ChannelWebhookAck", {"received": serializers.IntegerField(),
                                               "duplicates": serializers.IntegerField()})
_TENANT_PARAM = OpenApiParameter("tenant_id", OpenApiTypes.STR, OpenApiParameter.PATH)


#: What walking a signed payload of the wrong shape raises (``.get`` on a string, a number indexed...).
_SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError)


class _PlatformWebhook(APIView):
    authentication_classes = ()  # the platform's signature is the authentication
    permission_classes = (AllowAny,)
    throttle_classes = ()
    parser_classes = (JSONParser,)  # documents the body; the views read and verify the raw bytes


class WhatsAppWebhookView(_PlatformWebhook):
    @extend_schema(
        operation_id="channels_whatsapp_verify", tags=["channels"], auth=[{}],  # no X-API-Key: signed by the platform
        summary="WhatsApp webhook verification handshake (Meta calls it when the webhook is registered)",
        parameters=[_TENANT_PARAM,
                    OpenApiParameter("hub.mode", OpenApiTypes.STR, OpenApiParameter.QUERY, enum=["subscribe"]),
                    OpenApiParameter("hub.verify_token", OpenApiTypes.STR, OpenApiParameter.QUERY),
                    OpenApiParameter("hub.challenge", OpenApiTypes.STR, OpenApiParameter.QUERY)],
        responses={(200, "text/plain"): OpenApiTypes.STR, 403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
    )
    def get(self, request, tenant_id: str):
        _, config = _config_for(tenant_id, WHATSAPP)
        challenge = whatsapp.verify_handshake(params=request.query_params, verify_token=config.whatsapp_verify_token)
        if challenge is None:
            raise ApiError(403, "verify_token_mismatch", "The verify token does not match this tenant's.")
        return HttpResponse(challenge, content_type="text/plain")

    @extend_schema(
        operation_id="channels_whatsapp_webhook", tags=["channels"], auth=[{}],  # no X-API-Key: signed by the platform
        summary="WhatsApp Cloud API webhook (messages), signed with X-Hub-Signature-256",
        parameters=[_TENANT_PARAM, OpenApiParameter(whatsapp.SIGNATURE_HEADER, OpenApiTypes.STR,
                                                    OpenApiParameter.HEADER, required=True)],
        request=OpenApiTypes.OBJECT, responses={200: _ACK, 400: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT,
                                                 403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
    )
    def post(self, request, tenant_id: str):
        tenant, config = _config_for(tenant_id, WHATSAPP)
        header = request.headers.get(whatsapp.SIGNATURE_HEADER)
        if not header:
            raise ApiError(401, "signature_missing", f"The {whatsapp.SIGNATURE_HEADER} header is required.")
        if not whatsapp.signature_valid(app_secret=config.whatsapp_app_secret, body=request.body, header=header):
            raise ApiError(403, "signature_invalid", "The signature does not match this tenant's app secret.")
        try:
            parsed = whatsapp.parse_webhook(_json_body(request), phone_number_id=config.whatsapp_phone_number_id)
        except whatsapp.PayloadError as exc:
            raise ApiError(400, "invalid_webhook_payload", f"Not a WhatsApp webhook: {exc}.") from None
        except _SHAPE_ERRORS as exc:  # a string or list where the format has an object: the walker's own error
            raise ApiError(400, "invalid_webhook_payload", "Not a WhatsApp webhook: a field has an unexpected type "
                           f"({exc.__class__.__name__}).") from None
        if parsed.foreign_numbers and not parsed.items and not parsed.statuses:
            # Signed by an app this tenant shares with another, for a number that is not this tenant's.
            raise ApiError(403, "phone_number_mismatch", "This delivery is for a phone number of another account.",
                           details={"phone_number_ids": sorted(parsed.foreign_numbers)})
        with transaction.atomic():
            return Response(_enqueue(tenant, WHATSAPP, parsed.items))


class TelegramWebhookView(_PlatformWebhook):
    @extend_schema(
        operation_id="channels_telegram_webhook", tags=["channels"], auth=[{}],  # no X-API-Key: signed by the platform
        summary="Telegram Bot API webhook (one Update), authenticated by X-Telegram-Bot-Api-Secret-Token",
        parameters=[_TENANT_PARAM, OpenApiParameter(telegram.SECRET_HEADER, OpenApiTypes.STR,
                                                    OpenApiParameter.HEADER, required=True)],
        request=OpenApiTypes.OBJECT, responses={200: _ACK, 400: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT,
                                                 403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
    )
    def post(self, request, tenant_id: str):
        tenant, config = _config_for(tenant_id, TELEGRAM)
        header = request.headers.get(telegram.SECRET_HEADER)
        if not header:
            raise ApiError(401, "signature_missing", f"The {telegram.SECRET_HEADER} header is required.")
        if not telegram.secret_valid(expected=config.telegram_webhook_secret, header=header):
            raise ApiError(403, "signature_invalid", "The secret token does not match this tenant's.")
        try:
            item = telegram.parse_update(_json_body(request))
        except telegram.PayloadError as exc:
            raise ApiError(400, "invalid_webhook_payload", f"Not a Telegram update: {exc}.") from None
        except _SHAPE_ERRORS as exc:
            raise ApiError(400, "invalid_webhook_payload", "Not a Telegram update: a field has an unexpected type "
                           f"({exc.__class__.__name__}).") from None
        with transaction.atomic():
            return Response(_enqueue(tenant, TELEGRAM, [item] if item else []))


# --- operator routes ------------------------------------------------------------

class ReplySerializer(serializers.Serializer):
    text = serializers.CharField(allow_blank=True, trim_whitespace=True)


class HandoffSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Conversation.Status.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    notify = serializers.BooleanField(required=False, default=True,
                                      help_text="Tell the customer on their channel (default true).")


class OperatorMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["id", "conversation", "role", "content", "bubbles", "created_at"]


class HandoffResultSerializer(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    status = serializers.CharField()
    changed = serializers.BooleanField()
    event_id = serializers.IntegerField(allow_null=True)
    customer_notified = serializers.BooleanField(allow_null=True)


def _actor(request) -> str:
    return getattr(request.user, "label", "api")


class ConversationReplyView(TenantAPIView):
    @extend_schema(
        operation_id="conversations_operator_reply", tags=["conversations"], request=ReplySerializer,
        responses={201: OperatorMessageSerializer, 404: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT,
                   422: OpenApiTypes.OBJECT, 502: OpenApiTypes.OBJECT},
        summary="An operator's reply: sent on the conversation's channel, then stored; takes the conversation over",
    )
    def post(self, request, pk: int):
        conversation = owned_or_404(Conversation.objects.select_related("tenant", "contact"), "conversation", pk=pk)
        data = ReplySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = operator_reply(conversation=conversation, text=data.validated_data["text"],
                                 actor=_actor(request))
        return Response(OperatorMessageSerializer(message).data, status=201)


class ConversationHandoffView(TenantAPIView):
    @extend_schema(
        operation_id="conversations_handoff", tags=["conversations"], request=HandoffSerializer,
        responses={200: HandoffResultSerializer, 400: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
        summary="Switch a conversation between the bot, a human operator and closed",
    )
    def post(self, request, pk: int):
        conversation = owned_or_404(Conversation.objects.select_related("tenant", "contact"), "conversation", pk=pk)
        data = HandoffSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = conversation_status_set(
            conversation=conversation, status=data.validated_data["status"], reason="operator",
            actor=_actor(request), note=data.validated_data["note"], notify=data.validated_data["notify"])
        return Response(HandoffResultSerializer({
            "conversation_id": conversation.pk, "status": conversation.status, "changed": event is not None,
            "event_id": event.pk if event else None,
            "customer_notified": event.customer_notified if event and data.validated_data["notify"] else None,
        }).data)
