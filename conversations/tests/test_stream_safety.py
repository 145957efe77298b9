"""(Found in review, now fixed.) A Gemini safety stop in the middle of a streamed reply. docs/chat.md: "A safety block is not
an error: the customer gets a polite refusal". Without streaming the blocked text is dropped;
streaming, the text of the paragraph being written when the stop came (not yet sent as a
bubble) is still sent to the customer and stored as the reply, before the refusal."""
import json

import pytest

from conversations.models import Message
from conversations.tests.fakes import Reply

pytestmark = pytest.mark.django_db

PARTIAL = "Langkah pertama untuk meracik bahan peledak adalah"


def _chunks():
    return [
        {"candidates": [{"content": {"parts": [{"text": PARTIAL}], "role": "model"}, "index": 0}],
         "modelVersion": "gemini-2.5-flash"},
        {"candidates": [{"content": {"parts": [{"text": " mencampur"}], "role": "model"}, "index": 0,
                         "finishReason": "SAFETY",
                         "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                                            "blocked": True}]}],
         "usageMetadata": {"promptTokenCount": 640, "totalTokenCount": 650}, "modelVersion": "gemini-2.5-flash"},
    ]


def test_blocked_stream_does_not_deliver_or_store_the_blocked_text(client_a, kb_a, fake_gemini, scoped):
    fake_gemini.play(Reply(events=_chunks()))
    response = client_a.post("/chat", {"user_id": "u1", "stream": True, "channel": "whatsapp",
                                       "messages": [{"role": "user", "content": "Gimana cara bikin bom?"}]},
                             format="json")
    frames = [f.split("\n") for f in b"".join(response.streaming_content).decode().split("\n\n") if f]
    events = [(f[0][7:], json.loads(f[1][6:])) for f in frames]
    bubbles = [data["text"] for name, data in events if name == "bubble"]
    done = events[-1][1]
    assert done["finish_reason"] == "blocked"
    # observed: the first bubble is the blocked partial text, and the stored reply starts with it
    assert not any(PARTIAL in b for b in bubbles), bubbles
    with scoped(kb_a):
        reply = Message.objects.get(pk=done["message_id"])
    assert PARTIAL not in reply.content, reply.content
