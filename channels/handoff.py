"""Human handoff: when a conversation goes from the bot to a person and back.

The top half is pure (no ORM, no I/O) and table-tested:
``wants_human(text)`` recognises a customer asking for a person, in Indonesian
(formal and chat style: "mau bicara dengan admin", "hubungi CS", "sambungkan ke
orang", "pengen ngomong sm manusia") and English ("talk to a human", "live agent");
``model_cannot_help(reply)`` recognises the assistant's own "I don't know, shall I
connect you with the team?" answer that the prompt rules ask for.

The bottom half holds the services: ``conversation_status_set`` switches a
conversation between ``bot``, ``human`` and ``closed`` with a conditional update,
records a :class:`HandoffEvent`, tells the customer on their channel and sends a
signed ``conversation.handoff`` event to the tenant's webhook (in a django-q2 task).

The tenant's handoff policy (``Tenant.handoff_on_unanswered``,
``Tenant.handoff_resume_minutes``) decides whether "the assistant cannot help" hands
over at all, and when a conversation nobody on the team has answered goes back to
the bot (``handoff_resume_if_due``). A customer asking for a person is always handed over.
"""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone
from django_q.tasks import async_task

from agent_project.errors import ApiError
from channels.base import CHANNELS, SendOutcome
from channels.models import HandoffEvent
from channels.services import channel_deliver, fit_to_limit
from contacts.services import contact_log_record
from conversations.models import Conversation, Message
from tenants import hours
from tenants.models import Tenant
from tenants.scoping import tenant_scope

# --- pure detection -----------------------------------------------------------

_SLANG = {
    "dgn": "dengan", "dg": "dengan", "sm": "sama", "ama": "sama", "ma": "sama", "pgn": "mau", "pingin": "mau",
    "mo": "mau", "mw": "mau", "sy": "saya", "aku": "saya", "gw": "saya", "gue": "saya", "org": "orang",
    "ngobrol": "bicara", "ngomong": "bicara", "berbicara": "bicara", "omong": "bicara", "tlg": "tolong",
    "tolongin": "tolong", "hubungin": "hubungkan", "sambungin": "sambungkan", "sambungkn": "sambungkan",
    "pengen": "mau", "ingin": "mau", "minta": "mau", "butuh": "mau", "perlu": "mau",
    "wanna": "want to", "plz": "please", "pls": "please", "u": "you",
}
# Who the customer wants (Indonesian and English), with an optional "-nya".
_PERSON_ID = (r"(?:manusia|orang(?: (?:asli|beneran|sungguhan|betulan))?|admin|cs|customer (?:service|care)|"
              r"operator|petugas|agen|staf|staff|karyawan|pegawai|penjual|pemilik|owner|seller|"
              r"tim(?: (?:kalian|anda|cs|toko|support))?|pihak toko|live agent|human|layanan pelanggan)(?:nya)?")
_ID_PATTERNS = [
    # "mau bicara dengan admin", "bisa chat sama CS?", "boleh tanya ke orang?"
    rf"\b(?:mau|bisa|boleh|tolong|saya)\b(?: \w+){{0,3}} (?:bicara|chat|tanya|bertanya|dilayani|konsultasi|curhat)"
    rf"(?: langsung)? (?:dengan|sama|ke|kepada|oleh|bareng) {_PERSON_ID}\b",
    # "hubungi admin", "sambungkan saya ke CS", "tolong panggil operator", "hubungkan dengan orang"
    rf"\b(?:hubungi|hubungkan|sambungkan|panggil|panggilkan|teruskan|alihkan|oper|transfer)"
    rf"(?: (?:saya|aku|kami))?(?: (?:dengan|sama|ke|kepada))? {_PERSON_ID}\b",
    # "mau disambungkan ke admin", "minta dihubungkan dengan CS"
    rf"\b(?:disambungkan|dihubungkan|diteruskan|dialihkan|terhubung)(?: (?:dengan|sama|ke|kepada))? {_PERSON_ID}\b",
    # "mau admin", "minta CS", "perlu manusia" (minta/perlu are folded into "mau")
    rf"\bmau (?:ada )?{_PERSON_ID}\b(?! (?:fee|biaya))",
    # "saya mau orang, bukan bot", "jangan bot"
    r"\b(?:bukan|jangan|ga mau|gak mau|nggak mau|tidak mau) (?:sama |dengan )?(?:bot|robot|mesin)\b",
    # English
    r"\b(?:talk|speak|chat|connect|transfer|put|get) (?:me )?(?:to|with|through to|in touch with) "
    r"(?:a |an |the |your |some |real |live |actual )*"
    r"(?:human|person|agent|representative|rep|operator|someone|somebody|staff|customer service|support team|people)\b",
    r"\b(?:want|need|like) to (?:talk|speak|chat) (?:to|with) (?:someone|somebody|a person|a human)\b",
    r"\b(?:i|we) (?:want|need|would like) (?:a |an |to have a )?(?:real |live |actual )*"
    r"(?:human|person|agent|operator|representative)\b",
    r"\b(?:real|actual|live) (?:human|person|agent)\b",
    r"\bhuman (?:please|agent|support)\b",
    r"\bnot (?:a |the )?(?:bot|robot|machine)\b",
]
_ID_RE = [re.compile(p) for p in _ID_PATTERNS]
# A message that is only the name of a person to reach ("admin", "CS dong", "human please").
_ALONE_RE = re.compile(rf"^(?:halo |hai |hi |hello |p )?(?:{_PERSON_ID}|agent|representative)"
                       r"(?: (?:dong|donk|please|pls|ya|yah|min|kak|aja|saja|tolong|segera))*$")
# Telling about the past ("sudah hubungi admin kemarin") is not asking now.
_PAST_RE = re.compile(r"\b(?:sudah|udah|sdh|telah|pernah|tadi|kemarin|already|yesterday|earlier)\b")


def normalize(text: str) -> str:
    """Lower case, accents and punctuation removed, chat spellings folded to one form."""
    text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9\s-]", " ", text).replace("-", " ")
    words = []
    for word in text.split():
        words.extend(_SLANG.get(word, word).split())
    return " ".join(words)


def wants_human(text: str) -> bool:
    """Does this customer message ask to be served by a person?"""
    norm = normalize(text)
    if not norm or len(norm) > 400:  # a long message is a question that may mention an admin, not a request
        return False
    if _ALONE_RE.match(norm):
        return True
    for pattern in _ID_RE:
        match = pattern.search(norm)
        if match and not _PAST_RE.search(norm[max(0, match.start() - 40):match.start()]):
            return True
    return False


_UNKNOWN_RE = re.compile(
    r"\b(?:tidak|belum|tak|gak|nggak) (?:tahu|punya informasi|memiliki informasi|ada informasi|menemukan informasi|"
    r"dapat membantu|bisa membantu|dapat menjawab|bisa menjawab|yakin)\b|"
    r"\bdi luar (?:pengetahuan|informasi|cakupan)\b|"
    r"\b(?:do not|don t|dont|cannot|can t|cant|am unable to|unable to) (?:know|help|answer|find)\b|"
    r"\b(?:do not|don t|dont) have (?:any |that |this )?information\b|"
    r"\b(?:does not|doesn t|doesnt) (?:cover|include)\b|\bnot sure\b")
_OFFER_RE = re.compile(
    r"\b(?:hubungkan|sambungkan|menghubungkan|menyambungkan|teruskan|meneruskan|arahkan|mengarahkan|hubungi)\b"
    r"(?: \w+){0,5} (?:tim|admin|cs|petugas|staf|staff|manusia|customer service|operator|rekan|karyawan)\b|"
    r"\b(?:connect|transfer|forward|put) (?:you )?(?:\w+ ){0,4}(?:team|human|agent|person|staff|colleague|"
    r"customer service|representative|operator)\b")


# A short yes ("iya boleh", "ok kak", "yes please") to the assistant's last message. Thanks
# words are left out on purpose: "oke makasih" after an offer usually means "no need".
_YES = (r"ya+|iya+h?|iy|y|yup|yes|yeah|yep|boleh|mau|ok+|oke+|okay|okey|baik|silakan|silahkan|tolong|bisa|"
        r"sure|please|tentu|setuju|lanjut")
_YES_RE = re.compile(rf"^(?:{_YES})(?: (?:{_YES}|dong|donk|deh|kak|min|aja|saja|segera|sekarang|saya|sih|nih))*$")
_SENTENCE_END = re.compile(r"(?<=[.!?\n])\s+|\n+")


def is_short_yes(text: str) -> bool:
    return bool(_YES_RE.match(normalize(text)))


def offered_person(reply: str) -> bool:
    """Did the assistant *ask* whether to connect the customer with a person? (A question
    with the offer: "Apakah Anda ingin saya hubungkan dengan tim kami?"; "hubungi admin di
    0812…" is information, not an offer.) A short yes to such a question is as good as
    asking for a person, whatever the tenant's ``handoff_on_unanswered``: otherwise the bot
    would have offered something that does not happen."""
    return any(sentence.rstrip().endswith("?") and _OFFER_RE.search(normalize(sentence))
               for sentence in _SENTENCE_END.split(reply or ""))


def model_cannot_help(reply: str) -> bool:
    """The assistant said it does not know *and* offered a person (the prompt's rule for
    questions the knowledge base does not cover). Either alone is not enough: "we do not
    sell tulips" is an answer, and "contact our team on 0812…" is information."""
    norm = normalize(reply)
    return bool(_UNKNOWN_RE.search(norm) and _OFFER_RE.search(norm))


# --- services -------------------------------------------------------------------

logger = logging.getLogger(__name__)

HANDOFF_EVENT = "conversation.handoff"
EVENT_ATTEMPTS = 3
MAX_OPERATOR_REPLY_CHARS = 8000
NOTICE_PROVIDER = "layan"  # how notices are labelled among the assistant's messages

NOTICES = {
    "id": {
        "human": "Baik, kami sambungkan Anda dengan tim kami. Mohon tunggu sebentar, admin kami akan membalas "
                 "di sini.",
        "human_cannot_help": "Pertanyaan Anda kami teruskan ke tim kami. Mohon tunggu sebentar, admin kami akan "
                             "membalas di sini.",
        "closed_hours": " Saat ini di luar jam kerja kami, jadi balasan mungkin datang saat kami buka kembali.",
        "bot": "Terima kasih sudah menunggu. Anda kembali dilayani asisten otomatis kami; ketik \"admin\" kapan "
               "saja untuk bicara dengan tim kami.",
        "bot_timeout": "Maaf, tim kami belum sempat membalas. Sementara itu asisten otomatis kami akan membantu Anda; "
                       "ketik \"admin\" kapan saja untuk bicara dengan tim kami.",
        "closed": "Percakapan ini kami tutup. Terima kasih! Kirim pesan kapan saja jika butuh bantuan lagi.",
        "media": "Maaf, saat ini kami hanya dapat membaca pesan teks. Mohon tuliskan pertanyaan Anda, ya.",
        "unavailable": "Maaf, sistem kami sedang sibuk. Pesan Anda sudah kami terima; mohon coba lagi sebentar "
                       "lagi atau ketik \"admin\" untuk bicara dengan tim kami.",
    },
    "en": {
        "human": "Sure, I'm connecting you with our team. Please wait a moment; someone will reply here.",
        "human_cannot_help": "I've passed your question to our team. Please wait a moment; someone will reply here.",
        "closed_hours": " We are outside our working hours right now, so the reply may come when we open again.",
        "bot": "Thanks for waiting. You're back with our automatic assistant; type \"human\" any time to reach "
               "our team.",
        "bot_timeout": "Sorry, our team hasn't been able to reply yet. Our automatic assistant will help you in the "
                       "meantime; type \"human\" any time to reach our team.",
        "closed": "We've closed this conversation. Thank you! Message us any time if you need help again.",
        "media": "Sorry, we can only read text messages for now. Please type your question.",
        "unavailable": "Sorry, our system is busy. We received your message; please try again in a moment or "
                       "type \"human\" to reach our team.",
    },
}


def notice_text(*, locale: str | None, kind: str, is_open: bool = True) -> str:
    """A message to the customer, in the tenant's language (Indonesian unless English)."""
    texts = NOTICES["en" if (locale or "").lower().startswith("en") else "id"]
    text = texts[kind]
    if kind.startswith("human") and not is_open:
        text += texts["closed_hours"]
    return text


def _is_open(tenant: Tenant) -> bool:
    try:
        return hours.opening_status(working_hours=tenant.working_hours, holidays=tenant.holidays,
                                    timezone=tenant.timezone, at=timezone.now()).is_open
    except Exception:  # malformed hours must not stop a handoff
        return True


def conversation_message_store(*, conversation: Conversation, role: str, text: str, bubbles: list[str] | None = None,
                               at=None, external_message_id: str | None = None, **fields) -> Message:
    """Store a turn that did not go through the chat pipeline (a customer message while
    a human has the conversation, an operator reply, a notice) and log it on the contact."""
    tenant = conversation.tenant
    message = Message.objects.create(tenant=tenant, conversation=conversation, role=role, content=text,
                                     bubbles=bubbles if bubbles is not None else ([text] if role != "user" else []),
                                     **fields)
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=message.created_at,
                                                           updated_at=message.created_at)
    if conversation.contact_id:
        contact_log_record(tenant=tenant, contact=conversation.contact, role=role, content=text,
                           channel=conversation.channel, at=at or message.created_at,
                           external_message_id=external_message_id, conversation_id=conversation.pk)
    return message


def customer_notify(*, conversation: Conversation, text: str) -> bool:
    """Tell the customer something on their channel and keep it in the conversation. On a
    channel we do not send on (web), storing it is the notice: the client reads it."""
    if conversation.channel in CHANNELS:
        outcomes = channel_deliver(tenant=conversation.tenant, channel=conversation.channel,
                                   user_id=conversation.user_id, texts=[text])
        if not outcomes or not all(o.ok for o in outcomes):
            return False
    conversation_message_store(conversation=conversation, role=Message.Role.ASSISTANT, text=text,
                               provider=NOTICE_PROVIDER, model="notice", finish_reason="notice")
    return True


def conversation_status_set(*, conversation: Conversation, status: str, reason: str, actor: str = "",
                            note: str = "", notify: bool = True) -> HandoffEvent | None:
    """Move a conversation to ``bot``, ``human`` or ``closed``.

    The switch is a conditional update under a row lock, so two operators (or an
    operator and the customer) switching at once make one change, not two events.
    Setting the status it already has changes nothing and answers None. Otherwise a
    :class:`HandoffEvent` is stored, the tenant's webhook gets a signed
    ``conversation.handoff`` event (a django-q2 task, after commit), and with
    ``notify`` the customer is told on their channel.
    """
    if status not in Conversation.Status.values:
        raise ApiError(400, "invalid_status", f"status must be one of {', '.join(Conversation.Status.values)}.",
                       details={"status": status})
    tenant = conversation.tenant
    with tenant_scope(tenant):
        with transaction.atomic():
            current = (Conversation.objects.select_for_update().filter(pk=conversation.pk)
                       .values_list("status", flat=True).first())
            if current is None:
                raise ApiError(404, "conversation_not_found", "No conversation with that id.")
            conversation.status = current
            if current == status:
                return None
            Conversation.objects.filter(pk=conversation.pk).update(status=status, updated_at=timezone.now())
            event = HandoffEvent.objects.create(
                tenant=tenant, conversation=conversation, from_status=current, to_status=status, reason=reason,
                actor=actor[:120], note=note, webhook_status="" if tenant.webhook_url else "skipped")
            if tenant.webhook_url:
                transaction.on_commit(lambda: async_task("channels.tasks.handoff_event_deliver", event.pk,
                                                         group="channels-events", cluster=settings.CHANNELS_Q_CLUSTER))
        conversation.status = status
        if notify:
            kind = {"human": "human_cannot_help" if reason == HandoffEvent.Reason.MODEL_CANNOT_HELP else "human",
                    "bot": "bot_timeout" if reason == HandoffEvent.Reason.NO_OPERATOR_REPLY else "bot",
                    "closed": "closed"}[status]
            text = notice_text(locale=tenant.locale, kind=kind, is_open=_is_open(tenant))
            event.customer_notified = customer_notify(conversation=conversation, text=text)
            HandoffEvent.objects.filter(pk=event.pk).update(customer_notified=event.customer_notified)
    logger.info("conversation %s of %s: %s → %s (%s by %s)", conversation.pk, tenant.pk, current, status, reason,
                actor or "-")
    return event


def handoff_resume_due(*, conversation: Conversation, tenant: Tenant, now=None) -> bool:
    """Has nobody on the team written in this ``human`` conversation for the tenant's
    ``handoff_resume_minutes``, counted from the later of its latest hand-over to ``human``
    and the operator's latest message? Never when the setting is empty or 0 (no query
    then); otherwise one query. A conversation with neither (made ``human`` outside the
    handoff service) counts from its creation."""
    minutes = tenant.handoff_resume_minutes
    if not minutes:
        return False
    with tenant_scope(tenant):
        handed = (HandoffEvent.objects.filter(conversation_id=conversation.pk, to_status=Conversation.Status.HUMAN)
                  .order_by("-created_at").values("created_at")[:1])
        replied = (Message.objects.filter(conversation_id=conversation.pk, role=Message.Role.OPERATOR)
                   .order_by("-created_at").values("created_at")[:1])
        row = (Conversation.objects.filter(pk=conversation.pk)
               .annotate(handed_at=Subquery(handed), replied_at=Subquery(replied))
               .values_list("created_at", "handed_at", "replied_at").first())
    if row is None:
        return False
    since = max(at for at in row if at is not None)
    return (now or timezone.now()) - since >= timedelta(minutes=minutes)


def handoff_resume_if_due(*, conversation: Conversation, tenant: Tenant, notify: bool = True) -> bool:
    """A customer wrote in a ``human`` conversation: when no operator has written for the
    tenant's resume time (``handoff_resume_due``), give it back to the bot (a
    ``no_operator_reply`` event by ``system``; with ``notify`` the customer is told the
    assistant takes over meanwhile) so the bot answers this message. Answers whether the
    bot has the conversation now. Costs nothing unless the conversation is ``human``."""
    if conversation.status != Conversation.Status.HUMAN:
        return False
    if not handoff_resume_due(conversation=conversation, tenant=tenant):
        return False
    conversation_status_set(conversation=conversation, status=Conversation.Status.BOT,
                            reason=HandoffEvent.Reason.NO_OPERATOR_REPLY, actor="system",
                            note=f"no operator message for {tenant.handoff_resume_minutes} minutes", notify=notify)
    return conversation.status == Conversation.Status.BOT


def _send_failure(outcome: SendOutcome, delivered: int) -> ApiError:
    details = {"platform_code": outcome.code, "detail": outcome.detail, "delivered_parts": delivered}
    if outcome.detail.startswith("whatsapp_window_closed") or outcome.code == "131047":
        return ApiError(409, "whatsapp_window_closed",
                        "The customer last wrote more than 24 hours ago: WhatsApp only allows a template message now.",
                        details=details)
    if outcome.code == "channel_not_configured":
        return ApiError(409, "channel_not_configured", "This conversation's channel is not set up for the tenant.",
                        details=details)
    return ApiError(502, "channel_send_failed", "The message could not be delivered on the channel.",
                    details={**details, "retryable": outcome.outcome == "retry"})


def operator_reply(*, conversation: Conversation, text: str, actor: str) -> Message:
    """An operator's message to the customer: sent on the channel first, stored only once
    delivered (a failed send changes nothing). Replying takes the conversation over: a
    conversation the bot or nobody had becomes ``human`` (without a notice: the reply is one)."""
    text = (text or "").strip()
    if not text:
        raise ApiError(422, "empty_reply", "The reply is empty.")
    if len(text) > MAX_OPERATOR_REPLY_CHARS:
        raise ApiError(422, "reply_too_long", f"A reply may be at most {MAX_OPERATOR_REPLY_CHARS} characters.",
                       details={"max_chars": MAX_OPERATOR_REPLY_CHARS})
    pieces = [text]
    if conversation.channel in CHANNELS:
        pieces = fit_to_limit(text, conversation.channel)
        outcomes = channel_deliver(tenant=conversation.tenant, channel=conversation.channel,
                                   user_id=conversation.user_id, texts=pieces)
        failed = next((o for o in outcomes if not o.ok), None)
        if failed is not None:
            raise _send_failure(failed, delivered=sum(1 for o in outcomes if o.ok))
    with tenant_scope(conversation.tenant):
        message = conversation_message_store(conversation=conversation, role=Message.Role.OPERATOR, text=text,
                                             bubbles=pieces, provider="operator", model=actor[:100])
        if conversation.status != Conversation.Status.HUMAN:
            conversation_status_set(conversation=conversation, status=Conversation.Status.HUMAN,
                                    reason=HandoffEvent.Reason.OPERATOR, actor=actor, notify=False)
    return message


def handoff_event_payload(event: HandoffEvent) -> dict:
    conversation = event.conversation
    return {
        "event": HANDOFF_EVENT,
        "id": f"handoff_{event.pk}",
        "tenant_id": event.tenant_id,
        "conversation_id": conversation.pk,
        "channel": conversation.channel,
        "user_id": conversation.user_id,
        "contact_id": conversation.contact_id,
        "from_status": event.from_status,
        "status": event.to_status,
        "reason": event.reason,
        "actor": event.actor,
        "note": event.note,
        "at": event.created_at.isoformat(),
    }


def handoff_event_send(*, event: HandoffEvent) -> str:
    """POST the event to the tenant's webhook, signed like follow-ups are (see
    docs/followups.md: ``X-Layan-Signature`` over ``"<timestamp>." + body``),
    with ``Idempotency-Key: handoff_<id>``. 2xx sent; 4xx failed at once; 5xx, 408,
    429 and network errors are tried up to three times. Answers the stored status."""
    from followups.senders import webhook_post

    tenant = event.tenant
    if not tenant.webhook_url or not tenant.webhook_secret:
        HandoffEvent.objects.filter(pk=event.pk).update(webhook_status="skipped",
                                                        webhook_detail="the tenant has no webhook_url/secret")
        return "skipped"
    body = json.dumps(handoff_event_payload(event), ensure_ascii=False).encode()
    status, detail = "failed", ""
    for attempt in range(EVENT_ATTEMPTS):
        result = webhook_post(tenant=tenant, event=HANDOFF_EVENT, idempotency_key=f"handoff_{event.pk}", body=body,
                              timeout=settings.CHANNEL_HTTP_TIMEOUT_SECONDS)
        detail = result.detail
        if result.outcome == "sent":
            status = "sent"
            break
        if result.outcome == "permanent":
            break
        if attempt < EVENT_ATTEMPTS - 1:
            time.sleep(2 ** attempt)
    HandoffEvent.objects.filter(pk=event.pk).update(webhook_status=status, webhook_detail=detail[:500])
    return status


# --- the /chat route's hook ----------------------------------------------------------
# POST /chat (conversations.api.ChatView) calls these around the model, so a web or API
# conversation follows the same rules as WhatsApp and Telegram (channels.inbound).

def chat_handoff_before(prepared) -> dict | None:
    """Before the model: ``None`` when the bot should answer, else the /chat answer to give
    instead — empty while a person has the conversation (the customer's turn is already
    stored for them), or the handoff notice when the customer just asked for a person.
    A closed conversation is reopened for the bot by a new customer message; a ``human``
    one nobody on the team has answered for the tenant's ``handoff_resume_minutes`` goes
    back to the bot, which answers this message. Only a ``human`` (or ``closed``)
    conversation costs queries here."""
    conversation = prepared.conversation
    text = prepared.user_message.content
    asks_for_person = wants_human(text) or (is_short_yes(text)
                                            and offered_person(_last_reply(prepared.prompt.messages[:-1])))
    if conversation.status == Conversation.Status.CLOSED:
        conversation_status_set(conversation=conversation, status=Conversation.Status.BOT,
                                reason=HandoffEvent.Reason.CUSTOMER_MESSAGE, actor="customer", notify=False)
    if conversation.status == Conversation.Status.HUMAN:
        # Asking for a person again after the wait: back to the bot without its notice,
        # then handed over afresh below (a new event for the team, the handoff notice for them).
        if not handoff_resume_if_due(conversation=conversation, tenant=prepared.tenant, notify=not asks_for_person):
            return _chat_answer(prepared, reply="", finish_reason="human")
    if asks_for_person:
        conversation_status_set(conversation=conversation, status=Conversation.Status.HUMAN,
                                reason=HandoffEvent.Reason.CUSTOMER_REQUEST, actor="customer", notify=True)
        notice = notice_text(locale=prepared.locale, kind="human", is_open=prepared.opening.is_open)
        return _chat_answer(prepared, reply=notice, finish_reason="handoff")
    return None


def _last_reply(turns) -> str:
    return next((turn.content for turn in reversed(turns) if turn.role == "assistant"), "")


def last_assistant_reply(conversation: Conversation) -> str:
    """The newest thing the bot said in the conversation (one indexed query)."""
    return (conversation.messages.filter(role=Message.Role.ASSISTANT).order_by("-created_at", "-id")
            .values_list("content", flat=True).first() or "")


def chat_handoff_after(prepared, reply: str) -> str:
    """After the reply is stored: hand over when the assistant said it cannot help and the
    tenant hands unanswered questions over (``Tenant.handoff_on_unanswered``; otherwise the
    reply is all, and the bot keeps the conversation). The notice is stored in the
    conversation (the client reads it with the next poll) and, on a channel we send on,
    delivered there. Answers the conversation's status."""
    if prepared.tenant.handoff_on_unanswered and model_cannot_help(reply):
        conversation_status_set(conversation=prepared.conversation, status=Conversation.Status.HUMAN,
                                reason=HandoffEvent.Reason.MODEL_CANNOT_HELP, actor="assistant", notify=True)
    return prepared.conversation.status


def _chat_answer(prepared, *, reply: str, finish_reason: str) -> dict:
    """The /chat response body, same keys as a model answer, with no model call."""
    return {
        "conversation_id": prepared.conversation.pk, "message_id": None, "reply": reply,
        "bubbles": [reply] if reply else [], "sources": [], "tool_calls": [], "provider": NOTICE_PROVIDER,
        "model": "",
        "finish_reason": finish_reason,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "within_working_hours": prepared.opening.is_open, "timings_ms": prepared.timings,
        "status": prepared.conversation.status,
    }
