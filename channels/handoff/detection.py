"""Recognising a handoff in text: a customer asking for a person (``wants_human``), a short yes
to the assistant's offer of one (``is_short_yes`` + ``offered_person``), and the assistant's own
"I cannot help, shall I connect you?" (``model_cannot_help``). Pure: no ORM, no I/O, no import
of the project.
"""

from __future__ import annotations

import re
import unicodedata

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
