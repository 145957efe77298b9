"""What the customer is told when a conversation changes hands (and when only text can be read,
or the system is busy), in the tenant's language: Indonesian unless English. Pure.
"""

from __future__ import annotations

NOTICE_PROVIDER = "layan"  # how notices are labelled among the assistant's messages

NOTICES = {
    "id": {
        "human": "Baik, kami sambungkan Anda dengan tim kami. Mohon tunggu sebentar, admin kami akan membalas "
                 "di sini.",
        "human_cannot_help": "Pertanyaan Anda kami teruskan ke tim kami. Mohon tunggu sebentar, admin kami akan "
                             "membalas di sini.",
        "closed_hours": " Saat ini di luar jam kerja kami, jadi balasan mungkin datang saat kami buka kembali.",
        "bot": "Terima kasih sudah menunggu. Anda kembali dilayani asisten otomatis kami; ketik \"admin\" kapan "
               "saja untuk bicara dengan tim kami.",
        "bot_timeout": "Maaf, tim kami belum sempat membalas. Sementara itu asisten otomatis kami akan membantu Anda; "
                       "ketik \"admin\" kapan saja untuk bicara dengan tim kami.",
        "closed": "Percakapan ini kami tutup. Terima kasih! Kirim pesan kapan saja jika butuh bantuan lagi.",
        "media": "Maaf, saat ini kami hanya dapat membaca pesan teks. Mohon tuliskan pertanyaan Anda, ya.",
        "unavailable": "Maaf, sistem kami sedang sibuk. Pesan Anda sudah kami terima; mohon coba lagi sebentar "
                       "lagi atau ketik \"admin\" untuk bicara dengan tim kami.",
    },
    "en": {
        "human": "Sure, I'm connecting you with our team. Please wait a moment; someone will reply here.",
        "human_cannot_help": "I've passed your question to our team. Please wait a moment; someone will reply here.",
        "closed_hours": " We are outside our working hours right now, so the reply may come when we open again.",
        "bot": "Thanks for waiting. You're back with our automatic assistant; type \"human\" any time to reach "
               "our team.",
        "bot_timeout": "Sorry, our team hasn't been able to reply yet. Our automatic assistant will help you in the "
                       "meantime; type \"human\" any time to reach our team.",
        "closed": "We've closed this conversation. Thank you! Message us any time if you need help again.",
        "media": "Sorry, we can only read text messages for now. Please type your question.",
        "unavailable": "Sorry, our system is busy. We received your message; please try again in a moment or "
                       "type \"human\" to reach our team.",
    },
}


def notice_text(*, locale: str | None, kind: str, is_open: bool = True) -> str:
    """A message to the customer, in the tenant's language (Indonesian unless English)."""
    texts = NOTICES["en" if (locale or "").lower().startswith("en") else "id"]
    text = texts[kind]
    if kind.startswith("human") and not is_open:
        text += texts["closed_hours"]
    return text
