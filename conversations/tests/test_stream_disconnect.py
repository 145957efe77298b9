"""(Found in review, now fixed.) A streaming client that goes away after the first bubble (tab closed, network drop)."""
import pytest

from conversations.models import Message
from conversations.tests.fakes import gemini_stream

pytestmark = pytest.mark.django_db


def test_disconnect_after_first_bubble_leaves_no_unmarked_half_turn(client_a, kb_a, fake_gemini, scoped):
    fake_gemini.play(gemini_stream(["Halo Kak!\n\n", "Buket mawar merah Rp 350.000.\n\n", "Mau dikirim hari ini?"]))
    response = client_a.post("/chat", {"user_id": "web-1", "stream": True,
                                       "messages": [{"role": "user", "content": "Berapa harga buket mawar merah?"}]},
                             format="json")
    chunks = iter(response.streaming_content)
    seen = b""
    while b"event: bubble" not in seen:
        seen += next(chunks)
    for closer in response._resource_closers:  # what response.close() does when the client has gone
        closer()
    with scoped(kb_a):
        rows = list(Message.objects.order_by("id").values_list("role", "error_code", "content", "finish_reason"))
    # the customer saw the first bubble: it is the reply the conversation keeps, and says why it is short
    assert rows == [("user", "", "Berapa harga buket mawar merah?", ""),
                    ("assistant", "", "Halo Kak!", "client_disconnected")], rows


def test_disconnect_before_any_bubble_marks_the_turn(client_a, kb_a, fake_gemini, scoped):
    fake_gemini.play(gemini_stream(["Halo Kak!\n\n", "Buket mawar merah Rp 350.000."]))
    response = client_a.post("/chat", {"user_id": "web-2", "stream": True,
                                       "messages": [{"role": "user", "content": "Ada buket mawar?"}]}, format="json")
    chunks = iter(response.streaming_content)
    first = next(chunks)
    assert b"event: start" in first and b"event: bubble" not in first
    for closer in response._resource_closers:
        closer()
    with scoped(kb_a):
        rows = list(Message.objects.order_by("id").values_list("role", "error_code"))
    assert rows == [("user", "client_disconnected")]
