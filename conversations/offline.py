"""The offline provider (``LLM_PROVIDER=offline``, the default without a model account): answers
written without a model. It quotes the sentences of the best retrieved passages that share
the most words with the question (the words as the knowledge base's analyser stems them and
their synonyms) and are closest to it in meaning (the knowledge base's embedder), answers small talk with a polite line, asks for a waybill or an order number
or calls the tenant's tool for the intents it recognises, and says honestly when it does not
know. Writing an answer is the domain's job, so it lives here and not in
``agent_project.lib.llm``; ``ConversationsConfig.ready()`` registers it with the lib's registry.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from agent_project.lib.embeddings import EmbeddingError, get_embedder
from agent_project.lib.intents import detect_intent
from agent_project.lib.llm import (ChatModel, ChatTurn, Completion, Passage, ToolRequest, ToolSpec, estimate_tokens,
                                   language_of)
from knowledge.analysis import embedding_query, stem, synonyms

OFFLINE_MODEL = "offline-extractive"
#: what ``/health`` reports for this provider
OFFLINE_LABEL = {"model": OFFLINE_MODEL,
                 "note": "extractive answers from the knowledge base; no generative model configured"}

_OFFLINE_TEXT = {
    "id": {
        "intro": "Berikut informasi yang saya temukan di {title}:",
        "note": "(Jawaban otomatis, dikutip langsung dari basis pengetahuan kami.)",
        "unknown": "Maaf, saya belum punya informasi tentang hal itu di basis pengetahuan kami. "
                   "Apakah Anda ingin saya hubungkan dengan tim kami?",
        "followup": "Halo! Kami ingin menindaklanjuti percakapan sebelumnya. "
                    "Apakah masih ada yang bisa kami bantu? Balas pesan ini kapan saja, ya.",
        "thanks": "Sama-sama! Kalau ada yang ingin ditanyakan lagi, kirim pesan saja, ya.",
        "greeting": "Halo! Ada yang bisa saya bantu?",
        "ack": "Baik! Ada lagi yang bisa saya bantu?",
    },
    "en": {
        "intro": "Here is what I found in {title}:",
        "note": "(Automatic answer, quoted directly from our knowledge base.)",
        "unknown": "Sorry, our knowledge base does not cover that yet. Would you like me to connect you with our team?",
        "followup": "Hello! We are following up on our earlier conversation. "
                    "Is there anything else we can help you with? Just reply to this message.",
        "thanks": "You're welcome! If there is anything else, just send a message.",
        "greeting": "Hello! How can I help you?",
        "ack": "Alright! Is there anything else I can help you with?",
    },
}
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_STOPWORDS = frozenset(
    "yang dan di ke dari untuk apa apakah ada ini itu dengan atau saya kami kamu anda bisa berapa bagaimana kapan "
    "mana siapa the a an is are what how when where who can do does of to for in on and or with i you we".split()
)
_OFFLINE_MAX_CHARS = 700


# A message made only of these is a greeting or an acknowledgement ("ok kak, makasih",
# "thanks!", "halo min"), not a question: the offline answer is a polite word, not "I do not
# know, shall I connect you with our team?", which would hand the conversation to a person.
# (A yes to the assistant's offer of a person is recognised before any model is asked:
# channels.handoff.detection.is_short_yes.)
_SMALL_TALK_WORDS = {
    "thanks": frozenset("thanks thank thx tq tks ty makasih makasi mksh kasih trims".split()),
    "greeting": frozenset("""halo hallo hai hi hello hey pagi siang sore malam selamat good morning afternoon evening
                             assalamualaikum permisi""".split()),
    "ack": frozenset("ok oke okay okey okeh sip siap baik noted mantap mantab ya yaa iya iyaa".split()),
}
_FILLER_WORDS = frozenset("""terima you so much very banyak kak kakak min mimin gan sis bro mas mbak mba pak bu ibu om
                             ka dong deh nya""".split())


def small_talk(text: str) -> str | None:
    """``"thanks"``, ``"greeting"`` or ``"ack"`` when the message is only that, else None."""
    words = _WORD.findall((text or "").lower())
    if not words or len(words) > 8:
        return None
    kinds = [next((k for k, ws in _SMALL_TALK_WORDS.items() if w in ws), None) for w in words]
    if any(k is None and w not in _FILLER_WORDS for k, w in zip(kinds, words)):
        return None
    return next((k for k in _SMALL_TALK_WORDS if k in kinds), None)


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def _has(word: str, sentence: set[str]) -> bool:
    """Whether the sentence has ``word``, affixed forms included: "garansi" is in "bergaransi",
    "kirim" in "pengiriman" (words of 5 letters or more; shorter ones must match)."""
    return word in sentence or (len(word) >= 5 and any(word in t for t in sentence))


def _shared(wanted: dict[str, tuple[str, ...]], sentence: set[str]) -> int:
    """How many wanted words the sentence has, each as itself or as one of the words the
    knowledge base may use for it: "tracking" is found as "resi", "warranty" as "garansi"."""
    return sum(1 for word, others in wanted.items() if _has(word, sentence) or any(_has(o, sentence) for o in others))


def _wanted(question: str) -> dict[str, tuple[str, ...]]:
    """The question's words, each with its synonyms and translations (``knowledge.analysis``:
    the words retrieval searched the knowledge base with)."""
    return {w: synonyms(stem(w)) for w in _terms(question)}


#: How much a sentence's meaning counts against its shared words when choosing what to quote: a
#: sentence 0.02 below the closest one in cosine gives up a tenth of the question's words. On 463
#: FacQA questions with several sentences in their passage, the first sentence chosen held the answer
#: for 84.2% this way, 82.9% by shared words alone and 83.2% by meaning alone.
MEANING_WEIGHT = 5.0
#: A sentence sharing no word with the question is quoted beside the best one when it scores at most
#: this much below it (the same words as the best one and 0.06 further in cosine).
QUOTE_MARGIN = 0.3
_sentence_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_SENTENCE_CACHE_SIZE = 4096
_sentence_lock = threading.Lock()


def _closeness(question: str, sentences: list[str]) -> np.ndarray | None:
    """Cosine of each sentence to the question by the knowledge base's embedder (sentences
    remembered per model: the same passages come back for many questions); None when it
    cannot embed."""
    try:
        embedder = get_embedder()
        query = embedder.embed_query(embedding_query(question))  # retrieval embedded it already: cached
        keys = [(embedder.name, text) for text in sentences]
        with _sentence_lock:
            known = {key: _sentence_vectors[key] for key in keys if key in _sentence_vectors}
        missing = list(dict.fromkeys(key for key in keys if key not in known))
        if missing:
            known.update(zip(missing, embedder.embed_documents([text for _, text in missing])))
            with _sentence_lock:
                _sentence_vectors.update((key, known[key]) for key in missing)
                while len(_sentence_vectors) > _SENTENCE_CACHE_SIZE:
                    _sentence_vectors.popitem(last=False)
    except EmbeddingError:
        return None
    return np.vstack([known[key] for key in keys]) @ query


def extractive_answer(*, question: str, passages: Sequence[Passage], locale: str | None) -> str:
    """Quote the sentences of the best passages that answer the question: the words they share
    with it and how close their meaning is (the knowledge base's embedder, ``MEANING_WEIGHT``).
    Nothing invented, and an honest "I don't know" without passages."""
    texts = _OFFLINE_TEXT.get(language_of(locale), _OFFLINE_TEXT["id"])
    if not passages:
        return texts["unknown"]
    wanted = _wanted(question)
    candidates = []  # [shared words, passage rank, position, sentence]
    for rank, passage in enumerate(passages[:3]):
        title = passage.title.strip().lower()
        for pos, sentence in enumerate(s.strip() for s in _SENTENCE_END.split(passage.text)):
            # the heading line a chunk opens with is named in the intro already, and answers nothing
            if sentence and sentence.lower() != title:
                candidates.append((_shared(wanted, _terms(sentence)), rank, pos, sentence))
    if not candidates:
        return texts["unknown"]
    closeness = _closeness(question, [c[3] for c in candidates])
    if closeness is None:  # no embedder: shared words alone, the top passage's opening when none
        best = sorted((c for c in candidates if c[0] > 0), key=lambda c: (-c[0], c[1], c[2]))[:3]
        best = best or [c for c in candidates if c[1] == 0][:2]
    else:
        top = float(closeness.max())
        score = [c[0] / max(1, len(wanted)) + MEANING_WEIGHT * (float(cos) - top)
                 for c, cos in zip(candidates, closeness)]
        order = sorted(range(len(candidates)), key=lambda i: (-score[i], candidates[i][1], candidates[i][2]))
        # what answers, not the passage's other sentences: those sharing a word with the question, and
        # those close in meaning to the best one; the best three of them
        best = [candidates[i] for i in order if candidates[i][0] > 0 or score[i] >= score[order[0]] - QUOTE_MARGIN][:3]
    best.sort(key=lambda c: (c[1], c[2]))  # read in document order
    quoted, used = [], 0
    for _, _, _, sentence in best:
        if quoted and used + len(sentence) > _OFFLINE_MAX_CHARS:
            break
        quoted.append(sentence)
        used += len(sentence) + 1
    title = passages[best[0][1]].title or "basis pengetahuan"
    return f"{texts['intro'].format(title=title)}\n\n{' '.join(quoted)}\n\n{texts['note']}"


_OFFLINE_TOOL_TEXT = {
    "id": {
        "ask_waybill": "Untuk mengecek status pengiriman, boleh kirimkan nomor resi beserta kurirnya? "
                       "Contohnya: JNE 1234567890.",
        "ask_order": "Untuk mengecek status pesanan, boleh kirimkan nomor pesanannya? Contohnya: #INV-12345.",
        "failed": "Maaf, saya belum bisa mengecek data itu sekarang. Silakan coba lagi sebentar lagi, "
                  "atau saya hubungkan dengan tim kami?",
        "result": "Berikut hasil pengecekan:",
    },
    "en": {
        "ask_waybill": "To check the delivery, could you send the waybill number and the courier? "
                       "For example: JNE 1234567890.",
        "ask_order": "To check your order, could you send the order number? For example: #INV-12345.",
        "failed": "Sorry, I cannot check that right now. Please try again in a moment, "
                  "or shall I connect you with our team?",
        "result": "Here is what I found:",
    },
}


def offline_tool_request(*, question: str, tools: Sequence[ToolSpec]) -> ToolRequest | str | None:
    """The tool call a recognised intent needs, ``"ask_waybill"``/``"ask_order"`` when the
    customer must first say which parcel or order, or ``None`` (not a tool question)."""
    by_intent = {t.intent: t for t in reversed(tools) if t.intent}
    intent = detect_intent(question)
    if not intent.kind:
        return None
    if intent.kind == "track_shipment" and "track_shipment" in by_intent:
        if not intent.waybill:
            return "ask_waybill"
        arguments = {"waybill": intent.waybill}
        if intent.courier:
            arguments["courier"] = intent.courier
        return ToolRequest(id="offline-1", name=by_intent["track_shipment"].name, arguments=arguments)
    if intent.kind == "order_status" and "order_status" in by_intent:
        tool = by_intent["order_status"]
        if not intent.order_id:
            return "ask_order"
        required = list(tool.parameters.get("required") or tool.parameters.get("properties") or ["order_id"])
        return ToolRequest(id="offline-1", name=tool.name, arguments={required[0]: intent.order_id})
    if intent.kind == "order_status" and "track_shipment" in by_intent:
        return "ask_waybill"  # "sampai mana?" with no order tool: the waybill is what we can check
    return None


def offline_tool_answer(*, results: Sequence[ChatTurn], locale: str | None) -> str:
    """A reply made of the tools' own results: a ready customer summary when a tool gives
    one, its fields otherwise, and an apology (never a guess) when a call failed."""
    texts = _OFFLINE_TOOL_TEXT.get(language_of(locale), _OFFLINE_TOOL_TEXT["id"])
    parts = []
    for turn in results:
        try:
            payload = json.loads(turn.content)
        except ValueError:
            payload = {"result": turn.content}
        if not isinstance(payload, dict) or payload.get("error"):
            parts.append(texts["failed"])
            continue
        result = payload.get("result", payload)
        if isinstance(result, dict) and result.get("summary"):
            parts.append(str(result["summary"]))
        elif isinstance(result, dict):
            lines = [f"- {key}: {value}" for key, value in result.items() if value not in (None, "", [], {})]
            parts.append(texts["result"] + "\n" + "\n".join(lines) if lines else texts["failed"])
        else:
            parts.append(f"{texts['result']} {result}")
    return "\n\n".join(dict.fromkeys(parts)) or texts["failed"]


class OfflineChatModel:
    """Works with no account and no network: quotes the knowledge base, never invents."""

    provider = "offline"
    model = OFFLINE_MODEL

    def __init__(self, *, locale: str | None = None):
        self.locale = locale

    def complete(self, *, system: str, messages: list[ChatTurn], passages: Sequence[Passage] = (),
                 purpose: str = "reply", max_output_tokens: int | None = None,
                 temperature: float | None = None, tools: Sequence[ToolSpec] = ()) -> Completion:
        prompt = system + "".join(t.content for t in messages)
        if purpose == "followup":
            text = _OFFLINE_TEXT.get(language_of(self.locale), _OFFLINE_TEXT["id"])["followup"]
        elif messages and messages[-1].role == "tool":
            results = []
            for turn in reversed(messages):
                if turn.role != "tool":
                    break
                results.insert(0, turn)
            text = offline_tool_answer(results=results, locale=self.locale)
        elif tools and (wanted := offline_tool_request(
                question=next((t.content for t in reversed(messages) if t.role == "user"), ""), tools=tools)):
            if isinstance(wanted, ToolRequest):
                return Completion(text="", provider=self.provider, model=self.model,
                                  prompt_tokens=estimate_tokens(prompt), completion_tokens=0,
                                  finish_reason="tool_calls", tool_requests=[wanted])
            text = _OFFLINE_TOOL_TEXT.get(language_of(self.locale), _OFFLINE_TOOL_TEXT["id"])[wanted]
        else:
            question = next((t.content for t in reversed(messages) if t.role == "user"), "")
            if kind := small_talk(question):
                text = _OFFLINE_TEXT.get(language_of(self.locale), _OFFLINE_TEXT["id"])[kind]
            else:
                text = extractive_answer(question=question, passages=passages, locale=self.locale)
        return Completion(text=text, provider=self.provider, model=self.model, prompt_tokens=estimate_tokens(prompt),
                          completion_tokens=estimate_tokens(text), finish_reason="stop")

    def stream(self, **kwargs) -> Iterator[str | Completion]:
        completion = self.complete(**kwargs)
        for piece in re.split(r"(?<=\n\n)", completion.text):  # paragraph by paragraph, like a model would
            if piece:
                yield piece
        yield completion


def offline_chat_model(tenant=None, *, locale: str | None = None) -> ChatModel:
    """The registry's factory: answers in ``locale``, else in the tenant's language."""
    return OfflineChatModel(locale=locale or getattr(tenant, "locale", None))
