"""(Found in review, now fixed.) Lock order between erasure, merge, follow-ups and chat turns: conversations before contacts."""
import threading
import time

import pytest
from django.db import connection
from django_scopes import scopes_disabled

from contacts import services
from contacts.models import Contact, ContactDeletion
from conversations.models import Conversation
from followups.models import FollowUp

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*fns, timeout=30):
    box = {}

    def wrap(name, fn):
        def go():
            try:
                box[name] = fn()
            except BaseException as exc:  # noqa: BLE001
                box[name + "_error"] = exc
            finally:
                connection.close()
        return go

    threads = [threading.Thread(target=wrap(n, f)) for n, f in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return box


def _chat_contact(client, user_id="web-77"):
    payload = {"user_id": user_id, "messages": [{"role": "user", "content": "Halo, ada buket mawar?"}]}
    r = client.post("/chat", payload, format="json")
    assert r.status_code == 200, r.content
    with scopes_disabled():
        conv = Conversation.objects.get(user_id=user_id)
        return conv.contact, conv


def test_followup_schedule_and_erasure_deadlock(client_a, tenant_a):
    """followup_schedule holds the contact FOR KEY SHARE (contact_hold) and, at COMMIT, its deferred foreign
    key to the conversation takes FOR KEY SHARE on the conversation. contact_delete now holds the
    conversation FOR UPDATE and then waits for the contact: a cycle. Before a6f5a1b the erasure locked
    the contact first and the two serialised."""
    from followups.services import followup_schedule

    contact, conv = _chat_contact(client_a)
    held, erasing = threading.Event(), threading.Event()

    def pause_after_hold(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "FOR KEY SHARE" in sql and not held.is_set():
            held.set()
            erasing.wait(10)
            time.sleep(0.7)  # the erasure has the conversation now and waits for the contact
        return result

    def schedule():
        with connection.execute_wrapper(pause_after_hold):
            return followup_schedule(tenant=tenant_a, contact_id=contact.pk, conversation_id=conv.pk,
                                     message="Halo, masih minat?")

    def erase():
        held.wait(10)
        erasing.set()
        return services.contact_delete(contact=contact, actor="t", reason="PDP")

    box = _run(("schedule", schedule), ("erase", erase))
    errors = {k: repr(v) for k, v in box.items() if k.endswith("_error")}
    # expected: both succeed one after the other (the follow-up is then erased with the contact)
    assert not errors, errors


def test_merge_and_erasure_deadlock(client_a, tenant_a):
    """contact_merge locks both contacts, then repoints the source's conversations (UPDATE: row locks).
    contact_delete of the source now locks its conversations first, then the contact: opposite order."""
    source, conv = _chat_contact(client_a, "web-src")
    target, _ = _chat_contact(client_a, "web-tgt")
    locked, merging = threading.Event(), threading.Event()

    def pause_after_conv_lock(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "FOR UPDATE" in sql and not locked.is_set():
            locked.set()
            merging.wait(10)
            time.sleep(0.7)  # the merge has both contacts and waits for the conversation
        return result

    def erase():
        with connection.execute_wrapper(pause_after_conv_lock):
            return services.contact_delete(contact=source, actor="t", reason="PDP")

    def merge():
        locked.wait(10)
        merging.set()
        return services.contact_merge(target=target, source=source, actor="t")

    box = _run(("erase", erase), ("merge", merge))
    errors = {k: repr(v) for k, v in box.items() if k.endswith("_error")}
    # expected: one wins, the other answers 404 contact_not_found (an ApiError), never a deadlock
    assert not any("deadlock" in v.lower() for v in errors.values()), errors


def test_merge_and_chat_turn_deadlock(client_a, tenant_a):
    """A returning customer's turn (store.user_turn: conversation row, then contact row) against a merge
    of that contact into another (contacts first, then the conversations): the lock order the erasure
    fix documents as the rule is broken by contact_merge."""
    source, conv = _chat_contact(client_a, "web-src")
    target, _ = _chat_contact(client_a, "web-tgt")
    locked, chatting = threading.Event(), threading.Event()

    def pause_after_contacts(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "FOR UPDATE" in sql and not locked.is_set():
            locked.set()
            chatting.wait(10)
            time.sleep(0.7)  # the chat statement has the conversation and waits for the contact
        return result

    def merge():
        with connection.execute_wrapper(pause_after_contacts):
            return services.contact_merge(target=target, source=source, actor="t")

    def chat():
        locked.wait(10)
        chatting.set()
        client_a.raise_request_exception = False
        return client_a.post("/chat", {"user_id": "web-src", "messages": [{"role": "user", "content": "Jadi?"}]},
                             format="json")

    box = _run(("merge", merge), ("chat", chat))
    errors = {k: repr(v) for k, v in box.items() if k.endswith("_error")}
    resp = box.get("chat")
    summary = (errors, resp and (resp.status_code, resp.content[:300]))
    assert not errors, summary
    assert resp.status_code == 200, summary


def _client_for(tenant):
    from rest_framework.test import APIClient

    c = APIClient()
    c.credentials(HTTP_X_API_KEY=tenant.test_key)
    c.raise_request_exception = False
    return c


def test_whatsapp_first_messages_at_once_deadlock_with_the_next_turn(tenant_a):
    """A new WhatsApp customer sends three messages in quick succession to /chat. Since a6f5a1b the first
    messages of a numeric WhatsApp id all take the ORM path: the second one's conversation FOR UPDATE finds no
    row yet (the first is still being stored), so it locks the contact (_touch) and only then the
    conversation (last_message_at), while the third, a returning customer's one-statement turn by then,
    locks the conversation and then the contact. Before, the second message's first_turn waited on the
    first's identity insert and entered the ORM path after it committed, locking the conversation first."""
    wa = "6281234500001"
    t2_selected, t1_done, t2_touched = threading.Event(), threading.Event(), threading.Event()
    state = {"selected": False, "touched": False}

    def pause(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not state["selected"] and "FOR UPDATE" in sql and "conversations_conversation" in sql:
            state["selected"] = True
            t2_selected.set()
            t1_done.wait(20)  # the first message is stored meanwhile
        elif state["selected"] and not state["touched"] and sql.lstrip().startswith("UPDATE") \
                and '"contacts_contact"' in sql:
            state["touched"] = True
            t2_touched.set()
            time.sleep(1.0)  # the third message's statement has the conversation and waits for the contact
        return result

    def post(text):
        return _client_for(tenant_a).post("/chat", {"user_id": wa, "channel": "whatsapp",
                                                    "messages": [{"role": "user", "content": text}]}, format="json")

    def second():
        with connection.execute_wrapper(pause):
            return post("kak")

    def first():
        t2_selected.wait(20)
        try:
            return post("Halo")
        finally:
            t1_done.set()

    def third():
        t2_touched.wait(20)
        return post("ada promo buket mawar?")

    box = _run(("second", second), ("first", first), ("third", third))
    errors = {k: repr(v) for k, v in box.items() if k.endswith("_error")}
    codes = {k: (v.status_code, v.content[:120] if v.status_code != 200 else b"") for k, v in box.items()
             if not k.endswith("_error")}
    assert not errors and all(c == 200 for c, _ in codes.values()), (errors, codes)
