"""Tools in the chat pipeline, end to end through POST /chat on the embedded database:
the offline provider, Gemini and an OpenAI-compatible server (faked at the HTTP seam)
calling the tracking tool (mock or Biteship, faked) and a shop's order-status endpoint."""

from __future__ import annotations

import json

import pytest

from conversations.models import Message
from conversations.tests.fakes import Reply, gemini_stream, gemini_text, openai_completion, openai_stream
from tools.tests.fakes import Answer, biteship_error, biteship_tracking, shop_order

pytestmark = pytest.mark.django_db


def ask(client, content, user_id="6281234567890", **extra):
    payload = {"user_id": user_id, "messages": [{"role": "user", "content": content}], "channel": "whatsapp",
               **extra}
    return client.post("/chat", payload, format="json")


def turns(tenant, scoped):
    with scoped(tenant):
        return list(Message.objects.order_by("id"))


def gemini_call(name: str, args: dict, call_id: str | None = None) -> dict:
    """A generateContent answer whose part is a functionCall (ai.google.dev/gemini-api/docs/function-calling)."""
    call = {"name": name, "args": args, **({"id": call_id} if call_id else {})}
    return {
        "candidates": [{"content": {"parts": [{"functionCall": call}], "role": "model"}, "finishReason": "STOP",
                        "index": 0}],
        "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 12, "totalTokenCount": 312},
        "modelVersion": "gemini-2.5-flash",
    }


def openai_tool_call(name: str, args: dict, call_id: str = "call_abc123") -> dict:
    """A chat.completion whose message carries tool_calls (platform.openai.com/docs/guides/function-calling)."""
    return {
        "id": "chatcmpl-tool", "object": "chat.completion", "created": 1741569952, "model": "llama3.1:8b",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)}}]}}],
        "usage": {"prompt_tokens": 210, "completion_tokens": 18, "total_tokens": 228},
    }


# --- offline provider: the intents it recognises itself -----------------------------------

def test_offline_cek_resi_calls_the_courier_api_and_answers_in_indonesian(client_a, tenant_a, biteship_a, courier_api,
                                                                          scoped):
    courier_api.play(Answer(body=biteship_tracking("1234567890", "jne", "dropping_off")))
    response = ask(client_a, "cek resi JNE 1234567890")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["provider"] == "offline"
    assert "JNE" in body["reply"] and "1234567890" in body["reply"]
    assert "sedang dalam perjalanan" in body["reply"]
    assert "Jakarta Selatan" in body["reply"] and "24 November 2026 pukul 14.30 WIB" in body["reply"]
    # the real client called Biteship's documented route with the tenant's key
    seen = courier_api.requests
    assert [(r.method, r.path) for r in seen] == [("GET", "/v1/trackings/1234567890/couriers/jne")]
    assert seen[0].headers["Authorization"] == "biteship_test_key_A1b2C3d4"
    (call,) = body["tool_calls"]
    assert call["name"] == "track_shipment" and call["arguments"] == {"waybill": "1234567890", "courier": "jne"}
    assert call["error"] is None and call["result"]["status"] == "in_transit" and call["duration_ms"] >= 0
    assert call["round"] == 1
    user, reply = turns(tenant_a, scoped)
    assert user.content == "cek resi JNE 1234567890" and reply.tool_calls == body["tool_calls"]
    assert reply.content == body["reply"]


def test_offline_with_the_mock_provider_is_deterministic(client_a, mock_shipping_a):
    first = ask(client_a, "Kak, paket saya dengan resi 1234567890 sudah sampai mana?").json()
    again = ask(client_a, "resi 1234567890").json()
    assert "menunggu dijemput" in first["reply"] and first["reply"] == again["reply"]
    delivered = ask(client_a, "cek resi sicepat 1234567894").json()  # digit sum 49 → delivered
    assert "SiCepat" in delivered["reply"] and "sudah diterima oleh BUDI" in delivered["reply"]
    assert "Perkiraan tiba" not in delivered["reply"]


def test_offline_asks_for_the_waybill_when_none_is_given(client_a, mock_shipping_a):
    body = ask(client_a, "pesanan saya sudah sampai mana ya?").json()
    assert "nomor resi" in body["reply"] and body["tool_calls"] == []


def test_offline_without_tools_keeps_answering_from_the_knowledge_base(client_a, kb_a):
    body = ask(client_a, "cek resi JNE 1234567890").json()
    assert body["tool_calls"] == [] and "belum punya informasi" in body["reply"]


def test_offline_order_status_calls_the_shop_endpoint(client_a, tenant_a, shop_api, order_tool):
    order_tool(tenant_a, shop_api)
    shop_api.play(Answer(body=shop_order("INV-1001", "DIKIRIM")))
    body = ask(client_a, "status pesanan #INV-1001 gimana?").json()
    (seen,) = shop_api.requests
    assert (seen.method, seen.path) == ("GET", "/api/orders/INV-1001")
    assert seen.headers["Authorization"] == "Bearer shop-secret-token-123456"
    assert body["tool_calls"][0]["result"] == {"status": "DIKIRIM", "kurir": "jne", "resi": "1234567890",
                                               "perkiraan_tiba": "2026-11-26"}
    assert "DIKIRIM" in body["reply"] and "2026-11-26" in body["reply"]


# --- Gemini function calling ------------------------------------------------------

def test_gemini_calls_the_tracking_tool_and_the_reply_has_the_status(client_a, biteship_a, courier_api,
                                                                     fake_gemini, scoped):
    courier_api.play(Answer(body=biteship_tracking("JP1234567890", "jnt", "delivered")))
    fake_gemini.play(
        Reply(body=gemini_call("track_shipment", {"waybill": "JP1234567890", "courier": "jnt"}, "fc-1")),
        Reply(body=gemini_text("Paket J&T Kakak dengan resi JP1234567890 sudah diterima oleh Siti Rahma, Kak.")),
    )
    response = ask(client_a, "Kak, paket J&T JP1234567890 sudah sampai belum?")
    assert response.status_code == 200, response.content
    body = response.json()
    assert "sudah diterima" in body["reply"] and body["provider"] == "gemini"

    first, second = fake_gemini.requests
    declarations = first.body["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["track_shipment"]
    # the SDK sends the schema under its own field name
    schema = declarations[0].get("parametersJsonSchema") or declarations[0]["parameters_json_schema"]
    assert schema["required"] == ["waybill"] and set(schema["properties"]) == {"waybill", "courier"}
    assert "Tools" in first.body["systemInstruction"]["parts"][0]["text"]
    # round two replays the model's call and carries the tool's answer as a functionResponse
    call_turn, result_turn = second.body["contents"][-2:]
    assert call_turn["role"] == "model" and call_turn["parts"][0]["functionCall"]["name"] == "track_shipment"
    response_part = result_turn["parts"][0]["functionResponse"]
    assert response_part["name"] == "track_shipment" and response_part["id"] == "fc-1"
    assert response_part["response"]["result"]["status"] == "delivered"
    assert "Siti Rahma" in response_part["response"]["result"]["summary"]
    assert courier_api.requests[0].path == "/v1/trackings/JP1234567890/couriers/jnt"
    # tokens of both model calls are counted
    assert body["usage"]["prompt_tokens"] == 300 + 812
    (stored,) = [m for m in turns(biteship_a.tenant, scoped) if m.role == "assistant"]
    assert stored.tool_calls[0]["result"]["status"] == "delivered" and stored.tool_calls[0]["id"] == "fc-1"


def test_gemini_tool_rounds_are_bounded(client_a, mock_shipping_a, fake_gemini, settings):
    settings.TOOLS_MAX_ROUNDS = 2
    fake_gemini.play(*[Reply(body=gemini_call("track_shipment", {"waybill": f"123456789{i}"})) for i in range(2)],
                     Reply(body=gemini_text("Maaf Kak, saya hubungkan dengan tim kami.")))
    body = ask(client_a, "cek resi 1234567890").json()
    assert [c["round"] for c in body["tool_calls"]] == [1, 2]
    assert len(fake_gemini.requests) == 3
    assert "tools" not in fake_gemini.requests[2].body  # the last call offers none: it must answer in words
    assert body["reply"].startswith("Maaf Kak")


def test_streaming_with_tools_sends_bubbles_and_the_calls(client_a, mock_shipping_a):
    response = client_a.post("/chat", {"user_id": "u-stream", "stream": True, "channel": "whatsapp",
                                       "messages": [{"role": "user", "content": "cek resi JNE 1234567890"}]},
                             format="json")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    events = [(block.split("\n")[0][7:], json.loads(block.split("\n")[1][6:]))
              for block in text.strip().split("\n\n")]
    names = [e for e, _ in events]
    assert names[0] == "start" and names[-1] == "done" and "bubble" in names
    done = events[-1][1]
    assert done["tool_calls"][0]["name"] == "track_shipment"
    assert " ".join(p["text"] for e, p in events if e == "bubble").split() == done["reply"].split()


# --- OpenAI-compatible tools --------------------------------------------------------

def test_openai_compatible_server_calls_the_shop_tool(client_a, tenant_a, shop_api, order_tool, fake_openai):
    order_tool(tenant_a, shop_api)
    shop_api.play(Answer(body=shop_order("INV-2002", "DIPROSES")))
    fake_openai.play(Reply(body=openai_tool_call("cek_pesanan", {"order_id": "INV-2002"})),
                     Reply(body=openai_completion("Pesanan INV-2002 sedang DIPROSES ya, Kak.")))
    body = ask(client_a, "pesanan INV-2002 statusnya apa?").json()
    assert body["reply"] == "Pesanan INV-2002 sedang DIPROSES ya, Kak."
    first, second = fake_openai.requests
    assert first.body["tools"] == [{"type": "function", "function": {
        "name": "cek_pesanan", "description": "Cek status pesanan toko berdasarkan nomor pesanan.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string",
                                                                     "description": "Nomor pesanan"}},
                       "required": ["order_id"]}}}]
    assistant, tool = second.body["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == "call_abc123" and assistant["role"] == "assistant"
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_abc123"
    assert json.loads(tool["content"])["result"]["status"] == "DIPROSES"
    assert shop_api.requests[0].path == "/api/orders/INV-2002"


# --- failing tools: a polite reply, nothing lost --------------------------------------

@pytest.mark.parametrize("answer, code", [
    (Answer(body=shop_order(), delay=3.0), "tool_timeout"),
    (Answer(500, {"error": "internal"}), "tool_http_error"),
    (Answer(503, {"error": "maintenance"}), "tool_http_error"),
    (Answer(401, {"error": "unauthorized"}), "tool_http_error"),
    (Answer(404, {"error": "order not found"}), "tool_not_found"),
    (Answer(raw=b'{"data": "' + b"x" * 200_000 + b'"}'), "tool_response_too_large"),
    (Answer(raw=b'{"data": "' + b"x" * 200_000 + b'"}', chunked=True), "tool_response_too_large"),
    (Answer(raw=b"<html>oops</html>"), "tool_bad_response"),
])
def test_failing_shop_tool_gives_a_polite_reply_and_keeps_everything(client_a, tenant_a, shop_api, order_tool,
                                                                     scoped, answer, code):
    order_tool(tenant_a, shop_api)
    shop_api.play(answer)
    response = ask(client_a, "status pesanan #INV-1001 dong")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["reply"].startswith("Maaf") and "hubungkan dengan tim" in body["reply"]
    assert body["tool_calls"][0]["error"]["code"] == code and body["tool_calls"][0]["result"] is None
    user, reply = turns(tenant_a, scoped)
    assert user.content == "status pesanan #INV-1001 dong" and user.error_code == ""
    assert reply.tool_calls[0]["error"]["code"] == code and reply.content == body["reply"]


def test_courier_errors_reach_gemini_as_an_error_and_the_reply_is_polite(client_a, biteship_a, courier_api,
                                                                         fake_gemini):
    courier_api.play(biteship_error(400))
    fake_gemini.play(Reply(body=gemini_call("track_shipment", {"waybill": "9999999999", "courier": "jne"})),
                     Reply(body=gemini_text("Maaf Kak, resi 9999999999 belum ditemukan. Mau saya hubungkan ke tim?")))
    body = ask(client_a, "resi jne 9999999999").json()
    assert body["tool_calls"][0]["error"]["code"] == "tracking_not_found"
    fed_back = fake_gemini.requests[1].body["contents"][-1]["parts"][0]["functionResponse"]["response"]
    assert fed_back["error"] == "tracking_not_found" and "result" not in fed_back
    assert body["reply"].startswith("Maaf Kak")


def test_a_tool_refused_by_the_address_check_is_a_polite_reply(client_a, tenant_a, shop_api, order_tool):
    order_tool(tenant_a, shop_api, allow_private=False)  # the fake listens on 127.0.0.1
    body = ask(client_a, "status pesanan #INV-1001").json()
    assert body["tool_calls"][0]["error"]["code"] == "tool_address_refused"
    assert shop_api.requests == [] and body["reply"].startswith("Maaf")


# --- tenancy ------------------------------------------------------------------------

def test_a_tool_of_tenant_a_is_never_offered_or_run_for_tenant_b(client_a, client_b, tenant_a, tenant_b, shop_api,
                                                                 order_tool, fake_gemini, scoped):
    order_tool(tenant_a, shop_api)
    fake_gemini.play(
        Reply(body=gemini_text("Halo Kak!")),  # tenant A: its tool is offered
        # tenant B's model asks for A's tool by name anyway
        Reply(body=gemini_call("cek_pesanan", {"order_id": "INV-1001"})),
        Reply(body=gemini_text("Maaf Kak, saya belum bisa mengecek pesanan itu.")),
    )
    ask(client_a, "halo")
    body = ask(client_b, "status pesanan #INV-1001").json()
    first_a, first_b, _ = fake_gemini.requests
    assert [d["name"] for d in first_a.body["tools"][0]["functionDeclarations"]] == ["cek_pesanan"]
    assert "tools" not in first_b.body and "cek_pesanan" not in json.dumps(first_b.body)
    assert shop_api.requests == []  # never run
    assert body["tool_calls"][0]["error"]["code"] == "unknown_tool"
    assert body["reply"].startswith("Maaf Kak")
    # and offline: B's "status pesanan" never reaches A's endpoint either
    from django.test import override_settings
    with override_settings(LLM_PROVIDER="offline"):
        ask(client_b, "status pesanan #INV-1001", user_id="b2")
    assert shop_api.requests == []


def test_a_model_naming_another_tenants_tool_gets_unknown_tool(client_b, tenant_a, tenant_b, shop_api, order_tool,
                                                               fake_gemini, scoped):
    from tools.models import ShippingConfig

    order_tool(tenant_a, shop_api)
    with scoped(tenant_b):
        ShippingConfig.objects.create(tenant=tenant_b, provider="mock")  # B has tools, but not A's
    fake_gemini.play(Reply(body=gemini_call("cek_pesanan", {"order_id": "INV-1001"})),
                     Reply(body=gemini_text("Maaf Kak.")))
    body = ask(client_b, "status pesanan #INV-1001").json()
    assert [d["name"] for d in fake_gemini.requests[0].body["tools"][0]["functionDeclarations"]] == ["track_shipment"]
    assert body["tool_calls"][0]["error"]["code"] == "unknown_tool"
    assert shop_api.requests == []


def test_disabled_tools_are_not_offered(client_a, tenant_a, shop_api, order_tool, fake_gemini, scoped):
    order_tool(tenant_a, shop_api, enabled=False)
    fake_gemini.play(Reply(body=gemini_text("Halo Kak!")))
    ask(client_a, "halo")
    assert "tools" not in fake_gemini.requests[0].body


def test_conversation_api_shows_the_tool_calls(client_a, client_b, mock_shipping_a):
    body = ask(client_a, "cek resi JNE 1234567890").json()
    detail = client_a.get(f"/conversations/{body['conversation_id']}").json()
    assistant = next(m for m in detail["messages"] if m["role"] == "assistant")
    assert assistant["tool_calls"] == body["tool_calls"] and assistant["tool_calls"][0]["name"] == "track_shipment"
    assert client_b.get(f"/conversations/{body['conversation_id']}").status_code == 404


def test_a_model_failing_after_the_tool_ran_keeps_the_users_turn(client_a, tenant_a, mock_shipping_a, fake_gemini,
                                                                 scoped):
    from conversations.tests.fakes import gemini_error

    fake_gemini.play(Reply(body=gemini_call("track_shipment", {"waybill": "1234567890"})),
                     gemini_error(503), gemini_error(503), gemini_error(503))
    response = ask(client_a, "cek resi 1234567890")
    assert response.status_code == 503 and response.json()["error"]["code"] == "llm_unavailable"
    (user,) = turns(tenant_a, scoped)
    assert user.content == "cek resi 1234567890" and user.error_code == "llm_unavailable"


def test_gemini_thought_signatures_are_replayed_with_the_results(client_a, mock_shipping_a, fake_gemini):
    answer = gemini_call("track_shipment", {"waybill": "1234567890"}, "fc-9")
    answer["candidates"][0]["content"]["parts"][0]["thoughtSignature"] = "c2lnbmF0dXJlLWJ5dGVz"
    fake_gemini.play(Reply(body=answer), Reply(body=gemini_text("Paketnya menunggu dijemput kurir, Kak.")))
    ask(client_a, "cek resi 1234567890")
    model_turn = fake_gemini.requests[1].body["contents"][-2]
    part = model_turn["parts"][0]
    assert part["functionCall"]["id"] == "fc-9"
    assert (part.get("thoughtSignature") or part.get("thought_signature")) == "c2lnbmF0dXJlLWJ5dGVz"


# --- streaming with tools: token by token, the tool rounds in between ------------------------

def sse_events(chunks):
    """(event, data) pairs from an SSE byte stream, yielded as soon as each is complete."""
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
            yield lines["event"], json.loads(lines["data"])


def gemini_stream_call(name: str, args: dict, call_id: str, signature: str) -> Reply:
    """streamGenerateContent (SSE) whose one chunk is a functionCall with its thought signature."""
    part = {"functionCall": {"name": name, "args": args, "id": call_id}, "thoughtSignature": signature}
    return Reply(events=[{"candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP",
                                          "index": 0}],
                          "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 12,
                                            "totalTokenCount": 312},
                          "modelVersion": "gemini-2.5-flash"}])


def openai_stream_call(name: str, fragments: list[str], *, said: list[str] = (), call_id: str = "call_abc123") -> Reply:
    """chat.completion.chunk SSE: optional text, then a tool call whose arguments arrive in fragments."""
    base = {"id": "chatcmpl-tool", "object": "chat.completion.chunk", "created": 1741569952, "model": "llama3.1:8b"}
    events: list = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                          "finish_reason": None}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
               for piece in said]
    events.append({**base, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
        {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}}]})
    events += [{**base, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": fragment}}]}}]} for fragment in fragments]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    events.append({**base, "choices": [],
                   "usage": {"prompt_tokens": 210, "completion_tokens": 18, "total_tokens": 228}})
    events.append("data: [DONE]\r\n\r\n")
    return Reply(events=events)


def test_gemini_streams_the_answer_that_follows_a_tool_call(client_a, tenant_a, mock_shipping_a, fake_gemini, scoped):
    fake_gemini.play(gemini_stream_call("track_shipment", {"waybill": "1234567890"}, "fc-7", "c2lnbmF0dXJl"),
                     gemini_stream(["Paket 1234567890 ", "sedang dalam perjalanan, Kak.\n\n", "Ada lagi?"]))
    events = list(sse_events(ask(client_a, "cek resi 1234567890", stream=True).streaming_content))
    assert [d["text"] for n, d in events if n == "bubble"] == ["Paket 1234567890 sedang dalam perjalanan, Kak.",
                                                              "Ada lagi?"]
    done = events[-1][1]
    assert done["reply"] == "Paket 1234567890 sedang dalam perjalanan, Kak.\n\nAda lagi?"
    assert [(c["name"], c["arguments"], c["error"]) for c in done["tool_calls"]] == [
        ("track_shipment", {"waybill": "1234567890"}, None)]
    assert done["usage"]["prompt_tokens"] == 300 + 700  # both model calls of the turn
    first, second = fake_gemini.requests
    assert "alt=sse" in first.path and "alt=sse" in second.path  # both calls streamed
    assert "track_shipment" in json.dumps(first.body["tools"])
    call_turn, results = second.body["contents"][-2:]
    assert call_turn["parts"][0]["functionCall"]["id"] == "fc-7"
    assert (call_turn["parts"][0].get("thoughtSignature") or call_turn["parts"][0].get("thought_signature")) \
        == "c2lnbmF0dXJl"
    assert results["parts"][0]["functionResponse"]["name"] == "track_shipment"
    with scoped(tenant_a):
        stored = Message.objects.get(pk=done["message_id"])
    assert stored.content == done["reply"] and stored.tool_calls[0]["name"] == "track_shipment"


def test_openai_stream_says_it_is_checking_before_the_tool_runs(client_a, tenant_a, shop_api, order_tool, fake_openai):
    """The words before the call reach the customer as a bubble while the shop's endpoint is
    still to be asked; the call's arguments, streamed in fragments, arrive whole."""
    order_tool(tenant_a, shop_api)
    shop_api.play(Answer(body=shop_order("INV-2002", "DIPROSES")))
    fake_openai.play(openai_stream_call("cek_pesanan", ['{"order_', 'id": "INV-', '2002"}'],
                                        said=["Sebentar ya Kak, ", "saya cek dulu."]),
                     openai_stream(["Pesanan INV-2002 ", "sedang DIPROSES ya, Kak."]))
    events = sse_events(ask(client_a, "status pesanan INV-2002?", stream=True).streaming_content)
    assert next(events)[0] == "start"
    assert next(events) == ("bubble", {"index": 0, "text": "Sebentar ya Kak, saya cek dulu."})
    assert shop_api.requests == []  # the customer has that bubble before the tool is even called
    rest = list(events)
    assert rest[0] == ("bubble", {"index": 1, "text": "Pesanan INV-2002 sedang DIPROSES ya, Kak."})
    done = rest[-1][1]
    assert done["reply"] == "Sebentar ya Kak, saya cek dulu.\n\nPesanan INV-2002 sedang DIPROSES ya, Kak."
    assert done["tool_calls"][0]["arguments"] == {"order_id": "INV-2002"}
    assert done["tool_calls"][0]["result"]["status"] == "DIPROSES"
    assert [r.path for r in shop_api.requests] == ["/api/orders/INV-2002"]
    messages = fake_openai.requests[1].body["messages"]
    assert messages[-2]["content"] == "Sebentar ya Kak, saya cek dulu." and messages[-2]["tool_calls"][0]["function"] \
        == {"name": "cek_pesanan", "arguments": json.dumps({"order_id": "INV-2002"})}
    assert messages[-1]["role"] == "tool" and messages[-1]["tool_call_id"] == "call_abc123"


def test_without_streaming_the_words_before_a_call_are_in_the_reply_too(client_a, tenant_a, shop_api, order_tool,
                                                                       fake_openai):
    """The same turn as JSON: the same reply and bubbles as the stream gives."""
    order_tool(tenant_a, shop_api)
    shop_api.play(Answer(body=shop_order("INV-2002", "DIPROSES")))
    asking = openai_tool_call("cek_pesanan", {"order_id": "INV-2002"})
    asking["choices"][0]["message"]["content"] = "Sebentar ya Kak, saya cek dulu."
    fake_openai.play(Reply(body=asking), Reply(body=openai_completion("Pesanan INV-2002 sedang DIPROSES ya, Kak.")))
    body = ask(client_a, "status pesanan INV-2002?").json()
    assert body["bubbles"] == ["Sebentar ya Kak, saya cek dulu.", "Pesanan INV-2002 sedang DIPROSES ya, Kak."]
    assert body["usage"]["prompt_tokens"] == 210 + 519
