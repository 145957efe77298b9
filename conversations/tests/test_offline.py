"""The offline provider: extractive answers quoted from the passages, small talk, the tool
calls it makes for the intents it recognises, and its place in the lib's registry."""

from __future__ import annotations

import pytest

from agent_project.lib.llm import ChatTurn, Completion, Passage, ToolSpec, get_chat_model
from conversations.offline import extractive_answer, offline_tool_request, small_talk

PASSAGES = [
    Passage(title="Daftar harga", text="Buket mawar merah isi 12 tangkai Rp 350.000. Buket tulip Rp 500.000. "
                                       "Semua harga termasuk kartu ucapan.", score=0.9),
    Passage(title="Pengiriman", text="Pengiriman gratis di Bandung. Pesanan sebelum 14.00 dikirim hari ini.",
            score=0.5),
]


def test_offline_quotes_the_best_sentences():
    text = extractive_answer(question="Berapa harga buket mawar merah?", passages=PASSAGES, locale="id-ID")
    assert "Buket mawar merah isi 12 tangkai Rp 350.000." in text
    assert "Daftar harga" in text and "dikutip langsung dari basis pengetahuan" in text
    assert "Pengiriman gratis" not in text


def test_offline_quotes_the_answer_not_the_heading_and_knows_affixed_words():
    # a knowledge entry's chunk opens with its title; "bergaransi" holds "garansi"
    passage = Passage(title="Garansi", text="Garansi\nToko buka setiap hari.\nSemua elektronik bergaransi resmi "
                                            "12 bulan.", score=0.9)
    text = extractive_answer(question="berapa lama garansi?", passages=[passage], locale="id-ID")
    assert "\n\nSemua elektronik bergaransi resmi 12 bulan.\n\n" in text and "Toko buka" not in text


def test_offline_finds_the_sentence_through_the_words_the_knowledge_base_uses():
    # an English question, an Indonesian entry: "tracking" is "resi", "number" is "nomor"
    passage = Passage(title="Pengiriman", text="Pengiriman ke seluruh Indonesia lewat JNE. Biaya dihitung dari berat "
                                               "paket. Nomor resi dikirim lewat WhatsApp.", score=0.8)
    text = extractive_answer(question="where is my tracking number?", passages=[passage], locale="en")
    assert text.startswith("Here is what I found in Pengiriman:")
    assert "Nomor resi dikirim lewat WhatsApp." in text and "Biaya dihitung" not in text


@pytest.mark.parametrize("text,kind", [
    ("ok", "ack"), ("iya kak", "ack"), ("ok kak, makasih", "thanks"), ("thank you so much!", "thanks"),
    ("terima kasih banyak ya", "thanks"), ("halo min", "greeting"), ("Good morning", "greeting"),
    ("ok, berapa harganya?", None), ("hi, do you ship to Bali?", None), ("kak", None), ("terima", None), ("", None),
])
def test_small_talk(text, kind):
    assert small_talk(text) == kind


def test_offline_says_it_does_not_know_without_passages():
    text = extractive_answer(question="Bisa bayar pakai bitcoin?", passages=[], locale="id-ID")
    assert text.startswith("Maaf") and "hubungkan dengan tim" in text
    assert extractive_answer(question="bitcoin?", passages=[], locale="en-US").startswith("Sorry")


def test_offline_model_labels_itself_and_writes_followups(settings):
    settings.LLM_PROVIDER = "offline"
    model = get_chat_model(locale="id-ID")
    result = model.complete(system="", messages=[ChatTurn("user", "harga buket tulip?")], passages=PASSAGES)
    assert (result.provider, result.model) == ("offline", "offline-extractive")
    assert "Buket tulip Rp 500.000." in result.text
    followup = model.complete(system="", messages=[], purpose="followup")
    assert followup.text.startswith("Halo!") and "menindaklanjuti" in followup.text
    english = get_chat_model(locale="en").complete(system="", messages=[], purpose="followup")
    assert english.text.startswith("Hello!")


def test_offline_stream_ends_with_the_completion(settings):
    items = list(get_chat_model().stream(system="", messages=[ChatTurn("user", "harga mawar")],
                                         passages=PASSAGES))
    assert isinstance(items[-1], Completion)
    assert "".join(items[:-1]) == items[-1].text


def test_health_labels_the_offline_provider(anon_client, settings):
    settings.LLM_PROVIDER = "offline"
    body = anon_client.get("/health").json()
    assert body["llm"]["provider"] == "offline" and body["llm"]["model"] == "offline-extractive"
    assert "no generative model" in body["llm"]["note"]


# --- tools without a model ---------------------------------------------------------------

TRACK = ToolSpec("track_shipment", "d", {"type": "object"}, intent="track_shipment")
ORDER = ToolSpec("cek_pesanan", "d", {"type": "object", "properties": {"no": {"type": "string"}},
                                      "required": ["no"]}, intent="order_status")


@pytest.mark.parametrize("text, tools, wanted", [
    ("cek resi JNE 1234567890", [TRACK], ("track_shipment", {"waybill": "1234567890", "courier": "jne"})),
    ("cek resi JNE 1234567890", [ORDER], None),  # no tracking tool: not a tool question for this shop
    ("status pesanan #A-778", [TRACK, ORDER], ("cek_pesanan", {"no": "A-778"})),
    ("pesanan saya sudah sampai mana?", [TRACK], "ask_waybill"),
    ("pesanan saya sudah sampai mana?", [ORDER], "ask_order"),
    ("harga mawar?", [TRACK, ORDER], None),
])
def test_offline_tool_request(text, tools, wanted):
    request = offline_tool_request(question=text, tools=tools)
    if isinstance(wanted, tuple):
        assert (request.name, request.arguments) == wanted
    else:
        assert request == wanted
