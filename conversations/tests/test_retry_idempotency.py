"""(Found in review, now fixed.) docs/chat.md: on a model failure "Your message was saved; please try again." A client that
does exactly that (resends the same message) gets the customer's turn stored twice, and the
model is shown the question twice in a row."""
import pytest

from conftest import assert_error
from conversations.models import Message
from conversations.tests.fakes import Reply, gemini_error, gemini_text

pytestmark = pytest.mark.django_db


def test_retry_after_llm_unavailable_does_not_duplicate_the_user_turn(client_a, kb_a, fake_gemini, settings, scoped):
    settings.LLM_MAX_RETRIES = 0
    payload = {"user_id": "6281", "channel": "whatsapp",
               "messages": [{"role": "user", "content": "Berapa harga buket mawar merah?"}]}
    fake_gemini.play(gemini_error(503), Reply(body=gemini_text("Rp 350.000, Kak.")))
    assert_error(client_a.post("/chat", payload, format="json"), 503, "llm_unavailable")
    assert client_a.post("/chat", payload, format="json").status_code == 200  # "please try again"
    with scoped(kb_a):
        turns = list(Message.objects.order_by("id").values_list("role", "content"))
    sent = [(c["role"], c["parts"][0]["text"]) for c in fake_gemini.requests[-1].body["contents"]]
    # observed: [user Q, user Q, assistant] stored; the model got [user Q, user Q]
    assert turns == [("user", "Berapa harga buket mawar merah?"), ("assistant", "Rp 350.000, Kak.")], turns
    assert sent == [("user", "Berapa harga buket mawar merah?")], sent


def test_a_retry_through_the_orm_path_is_taken_up_too(client_a, kb_a, fake_gemini, settings, scoped, monkeypatch):
    """The one-statement writes decline (a re-bound conversation, racing first messages): the ORM path
    takes up the failed turn the same way."""
    from conversations import store

    monkeypatch.setattr(store, "user_turn", lambda **kwargs: None)
    monkeypatch.setattr(store, "first_turn", lambda **kwargs: None)
    settings.LLM_MAX_RETRIES = 0
    payload = {"user_id": "web-9", "messages": [{"role": "user", "content": "Ada buket mawar putih?"}]}
    fake_gemini.play(Reply(body=gemini_text("Ada, Kak.")), gemini_error(503), Reply(body=gemini_text("Ada juga.")))
    assert client_a.post("/chat", {**payload, "messages": [{"role": "user", "content": "Halo"}]},
                         format="json").status_code == 200
    assert_error(client_a.post("/chat", payload, format="json"), 503, "llm_unavailable")
    assert client_a.post("/chat", payload, format="json").status_code == 200
    with scoped(kb_a):
        turns = list(Message.objects.order_by("id").values_list("role", "content", "error_code"))
    sent = [(c["role"], c["parts"][0]["text"]) for c in fake_gemini.requests[-1].body["contents"]]
    assert turns == [("user", "Halo", ""), ("assistant", "Ada, Kak.", ""),
                     ("user", "Ada buket mawar putih?", ""), ("assistant", "Ada juga.", "")], turns
    assert [text for _, text in sent].count("Ada buket mawar putih?") == 1, sent
