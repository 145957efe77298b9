"""The tenant's handoff policy through POST /chat: whether "the assistant cannot help"
hands over (``handoff_on_unanswered``), when a ``human`` conversation nobody on the team
answered goes back to the bot (``handoff_resume_minutes``), that asking for a person
always hands over, and that one tenant's policy never touches another's."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from django_scopes import scopes_disabled

from channels.handoff.chat import chat_handoff_after, chat_handoff_before
from channels.handoff.status import handoff_resume_due
from channels.models import HandoffEvent
from conversations.models import Conversation, Message
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

UNKNOWN = "Apakah bisa pesan karangan bunga duka cita untuk besok pagi?"  # not in the knowledge base
KNOWN = "Jam buka toko?"  # the offline provider answers "08.00 sampai 20.00" from the flower shop's entries


def _chat(client, text, user_id="web-1"):
    response = client.post("/chat", {"user_id": user_id, "channel": "web",
                                     "messages": [{"role": "user", "content": text}]}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _policy(tenant, **fields):
    Tenant.objects.filter(pk=tenant.pk).update(**fields)
    tenant.refresh_from_db()
    return tenant


def _conversation(tenant, user_id="web-1"):
    with scopes_disabled():
        return Conversation.objects.get(tenant=tenant, user_id=user_id)


def _events(tenant):
    with scopes_disabled():
        return list(HandoffEvent.objects.filter(tenant=tenant).order_by("id")
                    .values_list("from_status", "to_status", "reason", "actor"))


def _notices(conversation):
    with scopes_disabled():
        return list(conversation.messages.filter(finish_reason="notice").order_by("id")
                    .values_list("content", flat=True))


def _handed_over(tenant, *, minutes_ago, operator_minutes_ago=None, user_id="web-1"):
    """A web conversation a person has had since ``minutes_ago`` (a hand-over event then),
    optionally with an operator message ``operator_minutes_ago``; nothing sleeps."""
    now = timezone.now()
    with scopes_disabled():
        conversation = Conversation.objects.create(tenant=tenant, channel="web", user_id=user_id, status="human")
        Conversation.objects.filter(pk=conversation.pk).update(created_at=now - timedelta(days=3))
        event = HandoffEvent.objects.create(tenant=tenant, conversation=conversation, from_status="bot",
                                            to_status="human", reason="model_cannot_help", actor="assistant")
        HandoffEvent.objects.filter(pk=event.pk).update(created_at=now - timedelta(minutes=minutes_ago))
        if operator_minutes_ago is not None:
            message = Message.objects.create(tenant=tenant, conversation=conversation, role="operator",
                                             content="Halo Kak, saya cek dulu ya.", provider="operator")
            Message.objects.filter(pk=message.pk).update(created_at=now - timedelta(minutes=operator_minutes_ago))
    return conversation


# --- "the assistant cannot help" ---------------------------------------------------------------

@pytest.mark.parametrize("hand_over, status, events", [
    (True, "human", [("bot", "human", "model_cannot_help", "assistant")]),  # today's behaviour, the default
    (False, "bot", []),
])
def test_an_unanswered_question_hands_over_only_when_the_tenant_says_so(client_a, kb, tenant_a, hand_over, status,
                                                                        events):
    kb(_policy(tenant_a, handoff_on_unanswered=hand_over))
    body = _chat(client_a, UNKNOWN)
    assert "tim kami" in body["reply"]  # the reply that offers a person is sent either way
    assert body["status"] == status and _conversation(tenant_a).status == status
    assert _events(tenant_a) == events

    follow_up = _chat(client_a, KNOWN)
    if hand_over:  # a person has it: the bot is silent
        assert (follow_up["reply"], follow_up["status"]) == ("", "human")
    else:  # the bot keeps answering
        assert follow_up["status"] == "bot" and "08.00" in follow_up["reply"]


def test_yes_to_the_offer_of_a_person_hands_over_even_when_unanswered_questions_do_not(client_a, kb, tenant_a):
    kb(_policy(tenant_a, handoff_on_unanswered=False))
    assert "tim kami" in _chat(client_a, UNKNOWN)["reply"] and _conversation(tenant_a).status == "bot"
    body = _chat(client_a, "iya boleh kak")
    assert body["status"] == "human" and body["reply"]  # the hand-over notice, not the model
    assert _events(tenant_a) == [("bot", "human", "customer_request", "customer")]
    # A yes to an ordinary answer is only a message: another customer, a known question first.
    assert "08.00" in _chat(client_a, KNOWN, user_id="web-2")["reply"]
    assert _chat(client_a, "ok", user_id="web-2")["status"] == "bot"


def test_the_default_policy_is_todays_behaviour(tenant_a):
    assert (tenant_a.handoff_on_unanswered, tenant_a.handoff_resume_minutes) == (True, 30)


# --- back to the bot when no operator writes -----------------------------------------------------

@pytest.mark.parametrize("resume_minutes, handed_minutes_ago, operator_minutes_ago, resumes", [
    (30, 31, None, True),     # handed over 31 minutes ago, nobody wrote: the bot takes this message
    (30, 29, None, False),    # not yet
    (30, 240, 45, True),      # the operator wrote, but 45 minutes ago
    (30, 240, 5, False),      # the operator wrote 5 minutes ago: still theirs
    (1, 2, None, True),       # a short resume time
    (None, 60 * 24 * 30, None, False),  # empty: never, however long
    (0, 60 * 24 * 30, None, False),     # 0: never
])
def test_a_human_conversation_nobody_answers_goes_back_to_the_bot(client_a, kb, tenant_a, resume_minutes,
                                                                  handed_minutes_ago, operator_minutes_ago, resumes):
    kb(_policy(tenant_a, handoff_resume_minutes=resume_minutes))
    conversation = _handed_over(tenant_a, minutes_ago=handed_minutes_ago, operator_minutes_ago=operator_minutes_ago)
    body = _chat(client_a, KNOWN)
    if resumes:
        assert body["status"] == "bot" and "08.00" in body["reply"] and body["message_id"]  # answered, not silent
        assert _conversation(tenant_a).status == "bot"
        assert _events(tenant_a)[-1] == ("human", "bot", "no_operator_reply", "system")
        with scopes_disabled():
            assert f"{resume_minutes} minutes" in HandoffEvent.objects.filter(tenant=tenant_a).latest("id").note
        [notice] = _notices(conversation)
        assert "belum sempat membalas" in notice and "asisten otomatis" in notice
        with scopes_disabled():  # the stored order: the customer's turn, the notice, the bot's answer
            roles = list(conversation.messages.order_by("id").values_list("role", "finish_reason"))
        assert [r for r, _ in roles[-3:]] == ["user", "assistant", "assistant"] and roles[-2][1] == "notice"
    else:
        assert (body["reply"], body["bubbles"], body["message_id"], body["status"]) == ("", [], None, "human")
        assert _conversation(tenant_a).status == "human"
        assert len(_events(tenant_a)) == 1 and _notices(conversation) == []


def test_the_timer_counts_from_the_latest_hand_over(client_a, kb, tenant_a):
    """Handed back and taken over again: the newer hand-over is what counts."""
    kb(tenant_a)
    conversation = _handed_over(tenant_a, minutes_ago=300)
    with scopes_disabled():
        HandoffEvent.objects.create(tenant=tenant_a, conversation=conversation, from_status="human", to_status="bot",
                                    reason="operator", actor="rina")
        HandoffEvent.objects.create(tenant=tenant_a, conversation=conversation, from_status="bot", to_status="human",
                                    reason="customer_request", actor="customer")
    assert _chat(client_a, KNOWN)["status"] == "human"


def test_an_operator_reply_through_the_api_restarts_the_timer(client_a, kb, tenant_a):
    kb(tenant_a)
    conversation = _handed_over(tenant_a, minutes_ago=120)
    assert client_a.post(f"/conversations/{conversation.pk}/reply", {"text": "Sebentar ya Kak."},
                         format="json").status_code == 201
    assert _chat(client_a, KNOWN)["status"] == "human"
    assert handoff_resume_due(conversation=conversation, tenant=tenant_a,
                              now=timezone.now() + timedelta(minutes=31)) is True


def test_after_resuming_the_assistant_may_hand_over_again(client_a, tenant_a):
    """Back with the bot, an unanswered question hands over afresh (and restarts the timer)."""
    _handed_over(tenant_a, minutes_ago=45)
    body = _chat(client_a, UNKNOWN)
    assert body["status"] == "human" and "tim kami" in body["reply"]
    assert [e[2] for e in _events(tenant_a)] == ["model_cannot_help", "no_operator_reply", "model_cannot_help"]
    assert _chat(client_a, KNOWN)["status"] == "human"  # the new hand-over is recent: silent again


# --- asking for a person -----------------------------------------------------------------------------

@pytest.mark.parametrize("hand_over", [True, False])
@pytest.mark.parametrize("start, events", [
    ("bot", [("bot", "human", "customer_request", "customer")]),
    # waited past the resume time and asks again: back to the bot, then handed over afresh
    # (a new event for the team), with the handoff notice and not the "assistant is back" one
    ("human_overdue", [("bot", "human", "model_cannot_help", "assistant"),
                       ("human", "bot", "no_operator_reply", "system"),
                       ("bot", "human", "customer_request", "customer")]),
])
def test_asking_for_a_person_always_hands_over(client_a, tenant_a, hand_over, start, events):
    _policy(tenant_a, handoff_on_unanswered=hand_over)
    if start == "human_overdue":
        _handed_over(tenant_a, minutes_ago=90)
    body = _chat(client_a, "Saya mau bicara dengan admin")
    assert (body["finish_reason"], body["status"]) == ("handoff", "human")
    assert "sambungkan Anda dengan tim kami" in body["reply"]
    assert _conversation(tenant_a).status == "human"
    assert _events(tenant_a) == events
    assert not any("belum sempat membalas" in n for n in _notices(_conversation(tenant_a)))


def test_asking_for_a_person_while_one_has_it_changes_nothing(client_a, tenant_a):
    _handed_over(tenant_a, minutes_ago=5)
    body = _chat(client_a, "admin dong")
    assert (body["reply"], body["status"]) == ("", "human")
    assert len(_events(tenant_a)) == 1


# --- tenants are isolated -------------------------------------------------------------------------------

def test_one_tenants_policy_does_not_touch_anothers(client_a, client_b, kb, tenant_a, tenant_b):
    kb(_policy(tenant_a, handoff_on_unanswered=False, handoff_resume_minutes=None))
    kb(tenant_b)  # the defaults
    assert _chat(client_a, UNKNOWN)["status"] == "bot"
    assert _chat(client_b, UNKNOWN)["status"] == "human"
    assert _events(tenant_a) == [] and [e[2] for e in _events(tenant_b)] == ["model_cannot_help"]

    _handed_over(tenant_a, minutes_ago=120, user_id="web-2")
    _handed_over(tenant_b, minutes_ago=120, user_id="web-2")
    assert _chat(client_a, KNOWN, user_id="web-2")["status"] == "human"  # A: never resumes
    resumed = _chat(client_b, KNOWN, user_id="web-2")  # B: 30 minutes
    assert resumed["status"] == "bot" and "08.00" in resumed["reply"]
    assert _conversation(tenant_a, "web-2").status == "human" and _conversation(tenant_b, "web-2").status == "bot"


def test_a_conversation_of_another_tenant_is_not_read_for_the_timer(tenant_a, tenant_b):
    """The timer only reads the tenant's own rows: another tenant's operator message on a
    conversation id cannot count (it could not exist, but the query is scoped anyway)."""
    conversation = _handed_over(tenant_a, minutes_ago=60)
    assert handoff_resume_due(conversation=conversation, tenant=tenant_a) is True
    assert handoff_resume_due(conversation=conversation, tenant=tenant_b) is False  # not B's conversation


# --- cost -------------------------------------------------------------------------------------------------

def _prepared(tenant, status, text="Jam buka toko?"):
    conversation = Conversation(tenant=tenant, channel="web", user_id="web-1", status=status, pk=10**9)
    return SimpleNamespace(tenant=tenant, conversation=conversation, user_message=SimpleNamespace(content=text))


@pytest.mark.parametrize("hand_over", [True, False])
def test_the_bot_path_costs_no_queries(tenant_a, django_assert_num_queries, hand_over):
    _policy(tenant_a, handoff_on_unanswered=hand_over)
    with django_assert_num_queries(0):
        assert chat_handoff_before(_prepared(tenant_a, "bot")) is None
        assert chat_handoff_after(_prepared(tenant_a, "bot"), "Toko buka pukul 08.00 sampai 20.00.") == "bot"
    if not hand_over:
        with django_assert_num_queries(0):
            assert chat_handoff_after(_prepared(tenant_a, "bot"),
                                      "Maaf, saya tidak tahu. Mau saya hubungkan dengan tim kami?") == "bot"


def test_a_human_conversation_costs_one_query_to_stay_silent(tenant_a, django_assert_num_queries):
    conversation = _handed_over(tenant_a, minutes_ago=5)
    prepared = _prepared(tenant_a, "human")
    prepared.conversation = conversation
    prepared.opening = SimpleNamespace(is_open=True)
    prepared.timings = {}
    with django_assert_num_queries(1):
        assert chat_handoff_before(prepared)["status"] == "human"
    _policy(tenant_a, handoff_resume_minutes=None)
    with django_assert_num_queries(0):
        assert chat_handoff_before(prepared)["status"] == "human"
