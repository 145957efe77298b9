from __future__ import annotations

import json
from datetime import datetime, time
from datetime import timezone as dt_timezone

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from agent_project.errors import ApiError
from agent_project.lib.ids import parse_id
from agent_project.lib.llm import ChatTurn
from conversations.handoff import chat_handoff_after, chat_handoff_before
from conversations.models import Conversation, Message
from conversations.services.feedback import message_feedback
from conversations.services.prepare import chat_prepare
from conversations.services.reply import chat_abandoned, chat_complete, chat_stream
from tenants.scoping import tenant_scope
from tenants.viewsets import TenantAPIView, TenantViewSet, owned_or_404


class ChatTurnSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["user", "assistant"])
    content = serializers.CharField(max_length=8000, allow_blank=True, trim_whitespace=False)


class ChatRequestSerializer(serializers.Serializer):
    tenant_id = serializers.CharField(required=False, max_length=64,
                                      help_text="Optional; must be the key's tenant (the global key names it here).")
    user_id = serializers.CharField(max_length=200, help_text="The customer as the channel knows them.")
    messages = ChatTurnSerializer(many=True, min_length=1, max_length=100,
                                  help_text="The whole history (the last turn is the new user message) or only "
                                            "the new user message (the stored history is then used).")
    channel = serializers.RegexField(r"^[A-Za-z0-9_-]{1,32}$", required=False, default="web")
    locale = serializers.CharField(required=False, max_length=16, allow_blank=True,
                                   help_text="Reply language, e.g. id-ID (default: the tenant's locale, or English / "
                                             "Indonesian when the customer clearly writes the other of the two).")
    stream = serializers.BooleanField(required=False, default=False,
                                      help_text="Answer with server-sent events (or send Accept: text/event-stream).")

    def validate_messages(self, value):
        if value[-1]["role"] != "user" or not value[-1]["content"].strip():
            raise serializers.ValidationError("The last message must be a non-empty user message.")
        return value


class SourceSerializer(serializers.Serializer):
    document_id = serializers.IntegerField()
    title = serializers.CharField()
    chunk_id = serializers.IntegerField()
    snippet = serializers.CharField()
    score = serializers.FloatField()
    provenance = serializers.DictField()


class ChatResponseSerializer(serializers.Serializer):
    conversation_id = serializers.IntegerField()
    message_id = serializers.IntegerField(allow_null=True, help_text="null when the bot did not answer (handoff).")
    reply = serializers.CharField()
    bubbles = serializers.ListField(child=serializers.CharField())
    sources = SourceSerializer(many=True)
    tool_calls = serializers.ListField(child=serializers.DictField(), help_text=(
        "Tools the model called for this reply, in order: {id, name, arguments, result, error: {code, message} "
        "or null, duration_ms, round}."))
    provider = serializers.CharField(help_text="gemini, openai, or offline (extractive, no generative model).")
    model = serializers.CharField()
    finish_reason = serializers.CharField()
    usage = inline_serializer("ChatUsage", {"prompt_tokens": serializers.IntegerField(),
                                            "completion_tokens": serializers.IntegerField(),
                                            "total_tokens": serializers.IntegerField()})
    within_working_hours = serializers.BooleanField()
    timings_ms = serializers.DictField(child=serializers.FloatField())
    status = serializers.ChoiceField(choices=Conversation.Status.choices, help_text=(
        "The conversation's status after this turn (channels/handoff/): 'human' means a person has it and the "
        "bot stays silent (empty reply) until it is handed back."))


def sse_event(event: str, data: dict) -> bytes:
    # json.dumps never emits a raw newline, so each event's data is one "data:" line
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n".encode()


class ChatView(TenantAPIView):
    """``POST /chat``: the customer's message in, a grounded reply in the tenant's voice out."""

    throttle_scope = "chat"  # the stricter per-tenant chat rate limit (tenants/throttling.py)
    # JSON only: the body limits (message length and count, agent_project/limits.py) are checked on JSON
    # bodies, and a form or multipart body had passed by them.
    parser_classes = [JSONParser]

    def perform_content_negotiation(self, request, force=False):
        # Streams are StreamingHttpResponses that bypass renderers; everything else,
        # errors included, is JSON even when the client asked for text/event-stream.
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    @extend_schema(
        request=ChatRequestSerializer,
        responses={
            200: OpenApiResponse(ChatResponseSerializer, description="JSON, or `text/event-stream` when streaming: "
                                 "`event: start` {conversation_id, user_message_id}, then one `event: bubble` "
                                 "{index, text} per bubble, then `event: done` with this whole body (or "
                                 "`event: error` with the error body)."),
            422: OpenApiResponse(description="invalid request"),
            502: OpenApiResponse(description="llm_error: the model gave no usable answer (the user turn is kept)"),
            503: OpenApiResponse(description="llm_unavailable / llm_timeout (the user turn is kept)"),
        },
    )
    def post(self, request):
        serializer = ChatRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        wants_stream = data["stream"] or "text/event-stream" in request.headers.get("Accept", "")
        prepared = chat_prepare(
            tenant=self.tenant, user_id=data["user_id"], channel=data["channel"],
            messages=[ChatTurn(role=m["role"], content=m["content"]) for m in data["messages"]],
            locale=data.get("locale") or None,
        )
        # Human handoff (channels/handoff/chat.py, through conversations.handoff): while a person has the
        # conversation, or when the customer just asked for one, the bot does not answer (the turn is
        # stored for them).
        handoff_answer = chat_handoff_before(prepared)
        if handoff_answer is not None and not wants_stream:
            return Response(handoff_answer)
        if not wants_stream:
            body = chat_complete(prepared).as_dict()
            body["status"] = chat_handoff_after(prepared, body["reply"])  # "I cannot help" → human
            return Response(body)

        tenant = self.tenant

        def events():
            # runs after the view returned, outside the request's scope: open our own
            with tenant_scope(tenant):
                stream = None
                try:
                    yield sse_event("start", {"conversation_id": prepared.conversation.pk,
                                              "user_message_id": prepared.user_message.pk})
                    if handoff_answer is not None:  # human handoff: no model, the answer as one done event
                        yield sse_event("done", handoff_answer)
                        return
                    stream = chat_stream(prepared)
                    for event, payload in stream:
                        if event == "done":
                            payload["status"] = chat_handoff_after(prepared, payload["reply"])
                        yield sse_event(event, payload)
                except GeneratorExit:  # the client went away (response.close() closes this generator)
                    if stream is not None:
                        stream.close()  # stores what the client was sent (chat_stream)
                    elif handoff_answer is None:
                        chat_abandoned(prepared)
                    raise

        response = StreamingHttpResponse(events(), content_type="text/event-stream; charset=utf-8")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx must not hold the bubbles back
        return response


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["id", "role", "content", "bubbles", "sources", "tool_calls", "provider", "model", "finish_reason",
                  "prompt_tokens", "completion_tokens", "retrieval_ms", "generation_ms", "total_ms", "error_code",
                  "feedback", "feedback_comment", "feedback_at", "created_at"]


class ConversationSerializer(serializers.ModelSerializer):
    message_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Conversation
        fields = ["id", "channel", "user_id", "contact", "status", "created_at", "updated_at", "last_message_at",
                  "message_count"]


class ConversationDetailSerializer(ConversationSerializer):
    messages = MessageSerializer(many=True, read_only=True)

    class Meta(ConversationSerializer.Meta):
        fields = ConversationSerializer.Meta.fields + ["messages"]


def _moment(value: str, name: str, *, end: bool) -> datetime:
    """``2026-11-25`` (the whole day, in the server's zone) or a full ISO timestamp."""
    try:
        moment = parse_datetime(value)
        day = None if moment else parse_date(value)
    except ValueError:  # well-formed but impossible, e.g. 2026-13-45
        moment = day = None
    if moment is None:
        if day is None:
            raise ApiError(400, "invalid_filter", f"{name} must be a date (2026-11-25) or an ISO timestamp.",
                           details={name: value})
        moment = datetime.combine(day, time.max if end else time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    try:  # in UTC: Python takes offsets up to ±23:59, PostgreSQL only to ±15:59 ("+23:59" was a 500)
        return moment.astimezone(dt_timezone.utc)
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        raise ApiError(400, "invalid_filter", f"{name} is out of range.", details={name: value}) from None


_LIST_FILTERS = [
    OpenApiParameter("user_id", str), OpenApiParameter("contact_id", int), OpenApiParameter("channel", str),
    OpenApiParameter("status", str, enum=[s.value for s in Conversation.Status]),
    OpenApiParameter("since", OpenApiTypes.STR, description="last message at or after (date or ISO timestamp)"),
    OpenApiParameter("until", OpenApiTypes.STR, description="last message at or before (date or ISO timestamp)"),
]


class ConversationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """``GET /conversations`` (filters: user, contact, channel, status, dates) and ``GET /conversations/{id}``."""

    serializer_class = ConversationSerializer

    def scoped_queryset(self):
        from django.db.models import Count, F

        qs = Conversation.objects.all()
        if self.action == "retrieve":
            return qs.prefetch_related("messages")
        params = self.request.query_params
        if params.get("user_id"):
            qs = qs.filter(user_id=params["user_id"])
        if params.get("contact_id"):
            contact_id = parse_id(params["contact_id"])
            if contact_id is None:
                raise ApiError(400, "invalid_filter", "contact_id must be a number.")
            qs = qs.filter(contact_id=contact_id)
        if params.get("channel"):
            qs = qs.filter(channel=params["channel"].lower())
        if params.get("status"):
            if params["status"] not in Conversation.Status.values:
                raise ApiError(400, "invalid_filter", f"status must be one of {', '.join(Conversation.Status.values)}.")
            qs = qs.filter(status=params["status"])
        if params.get("since"):
            qs = qs.filter(last_message_at__gte=_moment(params["since"], "since", end=False))
        if params.get("until"):
            qs = qs.filter(last_message_at__lte=_moment(params["until"], "until", end=True))
        return qs.annotate(message_count=Count("messages")).order_by(F("last_message_at").desc(nulls_last=True), "-id")

    def get_serializer_class(self):
        return ConversationDetailSerializer if self.action == "retrieve" else ConversationSerializer

    @extend_schema(parameters=_LIST_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=ConversationDetailSerializer)
    def retrieve(self, request, *args, **kwargs):
        conversation = owned_or_404(self.get_queryset(), "conversation", pk=kwargs["pk"])
        return Response(ConversationDetailSerializer(conversation).data)


class FeedbackSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=["up", "down"], allow_null=True,
                                     help_text="up or down; null clears earlier feedback.")
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class FeedbackView(TenantAPIView):
    """``POST /conversations/{id}/messages/{mid}/feedback``: thumbs up/down on an assistant message."""

    @extend_schema(request=FeedbackSerializer, responses=MessageSerializer)
    def post(self, request, pk: str, mid: str):
        conversation = owned_or_404(Conversation.objects.all(), "conversation", pk=pk)
        message = owned_or_404(conversation.messages.all(), "message", pk=mid)
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        message = message_feedback(message=message, rating=serializer.validated_data["rating"],
                                   comment=serializer.validated_data["comment"])
        return Response(MessageSerializer(message).data)
