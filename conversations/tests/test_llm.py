"""The providers against local fake servers, through the real google-genai SDK and httpx."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from agent_project.lib import llm
from agent_project.lib.llm import ChatTurn, Completion, LLMBlocked, LLMError, LLMTimeout, LLMUnavailable
from conversations.tests.fakes import (
    Reply,
    gemini_candidate_blocked,
    gemini_error,
    gemini_prompt_blocked,
    gemini_stream,
    gemini_text,
    openai_completion,
    openai_error,
    openai_stream,
)

MESSAGES = [ChatTurn("user", "Halo"), ChatTurn("assistant", "Halo Kak!"), ChatTurn("user", "Harga mawar?")]


def complete(**kwargs):
    return llm.get_chat_model().complete(system="Kamu asisten toko.", messages=MESSAGES, **kwargs)


def stream_all(**kwargs):
    items = list(llm.get_chat_model().stream(system="Kamu asisten toko.", messages=MESSAGES, **kwargs))
    return [i for i in items if isinstance(i, str)], items[-1]


# --- Gemini -------------------------------------------------------------------------

def test_gemini_reply_with_usage_and_request_shape(fake_gemini, settings):
    fake_gemini.play(Reply(body=gemini_text("Buket mawar Rp 350.000, Kak.")))
    result = complete(temperature=0.1, max_output_tokens=256)
    assert result == Completion(text="Buket mawar Rp 350.000, Kak.", provider="gemini", model="gemini-2.5-flash",
                                prompt_tokens=812, completion_tokens=57, finish_reason="stop")
    request = fake_gemini.requests[0]
    assert request.path.endswith("/models/gemini-2.5-flash:generateContent")
    assert request.headers.get("x-goog-api-key") == "test-gemini-key"
    body = request.body
    assert body["systemInstruction"]["parts"][0]["text"] == "Kamu asisten toko."
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][2]["parts"][0]["text"] == "Harga mawar?"
    assert body["generationConfig"]["temperature"] == 0.1
    assert body["generationConfig"]["maxOutputTokens"] == 256
    # the SDK passes the nested config through in its own field spelling; proto JSON accepts both
    assert list(body["generationConfig"]["thinkingConfig"].values()) == [0]


def test_gemini_retries_a_429_then_succeeds(fake_gemini):
    fake_gemini.play(gemini_error(429), Reply(body=gemini_text("Siap, Kak.")))
    assert complete().text == "Siap, Kak."
    assert len(fake_gemini.requests) == 2


def test_gemini_gives_up_after_retries_with_unavailable(fake_gemini, settings):
    settings.LLM_MAX_RETRIES = 1
    fake_gemini.play(gemini_error(503), gemini_error(503), Reply(body=gemini_text("too late")))
    with pytest.raises(LLMUnavailable) as info:
        complete()
    assert info.value.status == 503 and info.value.code == "llm_unavailable"
    assert len(fake_gemini.requests) == 2


def test_gemini_falls_back_to_the_fallback_model(fake_gemini, settings):
    settings.LLM_MAX_RETRIES = 0
    settings.LLM_FALLBACK_MODEL = "gemini-2.5-flash-lite"
    fake_gemini.play(gemini_error(429), Reply(body=gemini_text("Dari model cadangan.", model="gemini-2.5-flash-lite")))
    result = complete()
    assert result.text == "Dari model cadangan." and result.model == "gemini-2.5-flash-lite"
    assert ":generateContent" in fake_gemini.requests[1].path
    assert "/models/gemini-2.5-flash-lite:" in fake_gemini.requests[1].path


def test_gemini_timeout(fake_gemini, settings):
    settings.LLM_TIMEOUT_SECONDS = 0.3
    settings.LLM_MAX_RETRIES = 0
    fake_gemini.play(Reply(body=gemini_text("late"), delay=2.0))
    with pytest.raises(LLMTimeout) as info:
        complete()
    assert info.value.code == "llm_timeout"


def test_gemini_prompt_blocked_for_safety(fake_gemini):
    fake_gemini.play(Reply(body=gemini_prompt_blocked()))
    with pytest.raises(LLMBlocked) as info:
        complete()
    assert info.value.reason == "SAFETY"


def test_gemini_reply_stopped_for_safety(fake_gemini):
    fake_gemini.play(Reply(body=gemini_candidate_blocked()))
    with pytest.raises(LLMBlocked) as info:
        complete()
    assert info.value.reason == "SAFETY"


def test_gemini_bad_key_is_an_error_not_a_retry(fake_gemini):
    fake_gemini.play(gemini_error(403), Reply(body=gemini_text("never")))
    with pytest.raises(LLMError) as info:
        complete()
    assert type(info.value) is LLMError and info.value.status == 502
    assert len(fake_gemini.requests) == 1


def test_gemini_empty_reply_is_an_error(fake_gemini):
    fake_gemini.play(Reply(body=gemini_text("")))
    with pytest.raises(LLMError):
        complete()


def test_gemini_stream(fake_gemini):
    fake_gemini.play(gemini_stream(["Halo Kak! ", "Buket mawar ", "Rp 350.000."]))
    pieces, final = stream_all()
    assert pieces == ["Halo Kak! ", "Buket mawar ", "Rp 350.000."]
    assert final.text == "Halo Kak! Buket mawar Rp 350.000." and final.prompt_tokens == 700
    assert final.completion_tokens == 42 and final.finish_reason == "stop"
    assert ":streamGenerateContent" in fake_gemini.requests[0].path and "alt=sse" in fake_gemini.requests[0].path


def test_gemini_stream_retries_a_429_before_the_first_chunk(fake_gemini):
    fake_gemini.play(gemini_error(429), gemini_stream(["Oke."]))
    pieces, final = stream_all()
    assert pieces == ["Oke."] and final.text == "Oke."


def test_gemini_needs_a_key(settings):
    settings.LLM_PROVIDER = "gemini"
    settings.GEMINI_API_KEY = ""
    with pytest.raises(ImproperlyConfigured):
        llm.get_chat_model()


# --- OpenAI-compatible ----------------------------------------------------------------

def test_openai_reply_and_request_shape(fake_openai):
    fake_openai.play(Reply(body=openai_completion("Buket mawar Rp 350.000.")))
    result = complete(max_output_tokens=100)
    assert result == Completion(text="Buket mawar Rp 350.000.", provider="openai", model="llama3.1:8b",
                                prompt_tokens=519, completion_tokens=33, finish_reason="stop")
    request = fake_openai.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test-openai"
    assert request.body["messages"][0] == {"role": "system", "content": "Kamu asisten toko."}
    assert [m["role"] for m in request.body["messages"][1:]] == ["user", "assistant", "user"]
    assert request.body["max_tokens"] == 100 and request.body["model"] == "llama3.1:8b"


def test_openai_retries_429_honouring_retry_after(fake_openai):
    fake_openai.play(openai_error(429, retry_after="0"), Reply(body=openai_completion("Oke.")))
    assert complete().text == "Oke."
    assert len(fake_openai.requests) == 2


def test_openai_unavailable_after_retries(fake_openai, settings):
    settings.LLM_MAX_RETRIES = 1
    fake_openai.play(openai_error(503), openai_error(503))
    with pytest.raises(LLMUnavailable):
        complete()


def test_openai_timeout(fake_openai, settings):
    settings.LLM_TIMEOUT_SECONDS = 0.3
    settings.LLM_MAX_RETRIES = 0
    fake_openai.play(Reply(body=openai_completion("late"), delay=2.0))
    with pytest.raises(LLMTimeout):
        complete()


def test_openai_content_filter_is_a_block(fake_openai):
    fake_openai.play(Reply(body=openai_completion("", finish="content_filter")))
    with pytest.raises(LLMBlocked):
        complete()


def test_openai_unauthorised_is_an_error(fake_openai):
    fake_openai.play(openai_error(401))
    with pytest.raises(LLMError) as info:
        complete()
    assert type(info.value) is LLMError


def test_openai_stream(fake_openai):
    fake_openai.play(openai_stream(["Halo ", "Kak!\n\n", "Ada lagi?"]))
    pieces, final = stream_all()
    assert pieces == ["Halo ", "Kak!\n\n", "Ada lagi?"]
    assert final.text == "Halo Kak!\n\nAda lagi?" and final.completion_tokens == 33
    assert fake_openai.requests[0].body["stream"] is True


def test_openai_needs_a_base_url(settings):
    settings.LLM_PROVIDER = "openai"
    settings.LLM_BASE_URL = ""
    with pytest.raises(ImproperlyConfigured):
        llm.get_chat_model()


# --- the registry ----------------------------------------------------------------------

def test_unknown_provider_is_refused(settings):
    settings.LLM_PROVIDER = "nonsense"
    with pytest.raises(ImproperlyConfigured):
        llm.get_chat_model()


def test_a_provider_registered_by_an_app_is_chosen_by_the_setting(settings, monkeypatch):
    """Providers that need the domain register themselves (the offline one from
    ``conversations.apps``): the lib builds them without importing the app."""
    from agent_project.lib.llm import registry
    from conversations.offline import OfflineChatModel

    built = []

    def factory(tenant, *, locale=None):
        built.append((tenant, locale))
        return OfflineChatModel(locale=locale)

    monkeypatch.setattr(registry, "PROVIDERS", dict(registry.PROVIDERS))
    monkeypatch.setattr(registry, "LABELS", dict(registry.LABELS))
    llm.register_provider("house", factory, label={"model": "house-1", "note": "a registered provider"})
    settings.LLM_PROVIDER = "house"
    model = llm.get_chat_model("a tenant", locale="en")
    assert built == [("a tenant", "en")]
    assert model.complete(system="", messages=[], purpose="followup").text.startswith("Hello!")
    assert llm.model_label() == {"provider": "house", "model": "house-1", "note": "a registered provider"}


# --- streaming with tools -------------------------------------------------------------

ORDER_TOOL = llm.ToolSpec(name="cek_pesanan", description="Cek status pesanan.",
                          parameters={"type": "object", "properties": {"order_id": {"type": "string"}}})


def test_openai_stream_assembles_parallel_tool_calls_from_fragments(fake_openai):
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "llama3.1:8b"}

    def delta(calls):
        return {**base, "choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}]}

    fake_openai.play(Reply(events=[
        delta([{"index": 0, "id": "call_a", "type": "function", "function": {"name": "cek_pesanan", "arguments": ""}}]),
        # Ollama-style: the first fragment carries no "arguments" at all
        delta([{"index": 1, "id": "call_b", "type": "function", "function": {"name": "cek_pesanan"}}]),
        delta([{"index": 0, "function": {"arguments": '{"order_id": "A'}}]),
        delta([{"index": 1, "function": {"arguments": '{"order_id": "B'}}]),
        delta([{"index": 1, "function": {"arguments": '-2"}'}}]),
        delta([{"index": 0, "function": {"arguments": '-1"}'}}]),
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        "data: [DONE]\r\n\r\n"]))
    pieces, final = stream_all(tools=[ORDER_TOOL])
    assert pieces == [] and final.finish_reason == "tool_calls" and final.text == ""
    assert [(c.id, c.name, c.arguments) for c in final.tool_requests] == [
        ("call_a", "cek_pesanan", {"order_id": "A-1"}), ("call_b", "cek_pesanan", {"order_id": "B-2"})]
    assert fake_openai.requests[0].body["tools"][0]["function"]["name"] == "cek_pesanan"


def test_gemini_stream_with_text_then_a_function_call(fake_gemini):
    text_chunk = {"candidates": [{"content": {"parts": [{"text": "Sebentar, saya cek dulu."}], "role": "model"},
                                  "index": 0}], "modelVersion": "gemini-2.5-flash"}
    call_chunk = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "cek_pesanan",
                                                                          "args": {"order_id": "A-1"}}}],
                                              "role": "model"}, "finishReason": "STOP", "index": 0}],
                  "usageMetadata": {"promptTokenCount": 90, "candidatesTokenCount": 9, "totalTokenCount": 99},
                  "modelVersion": "gemini-2.5-flash"}
    fake_gemini.play(Reply(events=[text_chunk, call_chunk]))
    pieces, final = stream_all(tools=[ORDER_TOOL])
    assert pieces == ["Sebentar, saya cek dulu."] and final.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in final.tool_requests] == [
        ("call-1", "cek_pesanan", {"order_id": "A-1"})]
    assert [bool(p.text) for p in final.raw.parts] == [True, False]  # both parts kept, to be sent back as they came
    assert final.prompt_tokens == 90
