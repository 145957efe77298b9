"""Table tests of the pure cores: handoff detection, webhook parsing, signatures, error
classification and the 24-hour window. No database, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from channels import telegram, whatsapp
from channels.handoff import detection, notices
from agent_project.lib.encryption import decrypt, derived_key, encrypt, mask

ASKS_FOR_A_PERSON = [
    "mau bicara dengan manusia",
    "Mau bicara dengan admin",
    "saya mau bicara dengan CS",
    "mau bicara dengan orang",
    "Saya ingin berbicara dengan customer service",
    "hubungi admin",
    "Tolong hubungkan saya dengan admin",
    "sambungkan ke CS dong",
    "bisa chat sama adminnya?",
    "pengen ngomong sm admin",
    "minta dihubungkan ke petugas",
    "panggil operator",
    "admin",
    "CS dong kak",
    "Admin please",
    "saya mau orang beneran, bukan bot",
    "mau dilayani oleh manusia",
    "I want to talk to a human",
    "Talk to an agent please",
    "Can I speak with a real person?",
    "connect me to customer service",
    "human please",
    "live agent",
    "I need a human",
    "I'd like to talk to someone",
]

DOES_NOT = [
    "berapa biaya admin?",
    "Saya sudah hubungi admin kemarin tapi belum dibalas",
    "Apakah produk ini aman untuk manusia?",
    "jam buka toko?",
    "Hak asasi manusia",
    "is this safe for humans?",
    "What is your admin fee?",
    "I talked to an agent yesterday",
    "mau pesan buket mawar 2",
    "Orangnya baik sekali, terima kasih",
    "",
]


@pytest.mark.parametrize("text", ASKS_FOR_A_PERSON)
def test_asks_for_a_person(text):
    assert detection.wants_human(text) is True


@pytest.mark.parametrize("text", DOES_NOT)
def test_does_not_ask_for_a_person(text):
    assert detection.wants_human(text) is False


@pytest.mark.parametrize("reply,expected", [
    ("Maaf, saya belum punya informasi tentang hal itu di basis pengetahuan kami. Apakah Anda ingin saya "
     "hubungkan dengan tim kami?", True),
    ("Sorry, our knowledge base does not cover that yet. Would you like me to connect you with our team?", True),
    ("Mohon maaf, saya tidak tahu jawabannya. Saya bisa menghubungkan Anda dengan admin kami.", True),
    ("I don't know that, but I can transfer you to a human agent.", True),
    ("Maaf, kami tidak menjual tulip.", False),  # an answer, not a failure
    ("Silakan hubungi tim kami di 0812-3456-7890 untuk pesanan besar.", False),  # information, no "I don't know"
    ("Saya tidak tahu.", False),  # no offer of a person
    ("Toko buka pukul 08.00 sampai 20.00 WIB.", False),
])
def test_model_cannot_help(reply, expected):
    assert detection.model_cannot_help(reply) is expected


@pytest.mark.parametrize("text,expected", [
    ("iya", True), ("Iya boleh kak", True), ("ok", True), ("oke dong", True), ("yes please", True),
    ("boleh, tolong ya", True), ("mau", True), ("y", True),
    ("oke makasih", False),  # after an offer this usually means "no need"
    ("tidak usah", False), ("ya tapi harganya berapa?", False), ("", False), ("nanti saja", False),
])
def test_short_yes(text, expected):
    assert detection.is_short_yes(text) is expected


@pytest.mark.parametrize("reply,expected", [
    ("Maaf, saya belum bisa menjawab itu sekarang. Apakah Anda ingin saya hubungkan dengan tim kami?", True),
    ("Sorry, I cannot answer that right now. Would you like me to connect you with our team?", True),
    ("Mau saya teruskan ke admin kami, Kak?\nAtau ada yang lain?", True),
    ("Silakan hubungi admin kami di 0812-3456-7890.", False),  # information, not a question
    ("Toko buka jam 08.00 sampai 20.00. Ada lagi yang bisa dibantu?", False),  # a question, no person
    ("", False),
])
def test_offered_person(reply, expected):
    assert detection.offered_person(reply) is expected


@pytest.mark.parametrize("locale,kind,is_open,contains", [
    ("id-ID", "human", True, "sambungkan Anda dengan tim kami"),
    ("id-ID", "human", False, "di luar jam kerja"),
    ("en-US", "human", True, "connecting you with our team"),
    ("en", "bot", True, "automatic assistant"),
    ("", "closed", True, "Percakapan ini kami tutup"),
])
def test_notices_follow_the_tenant_language(locale, kind, is_open, contains):
    text = notices.notice_text(locale=locale, kind=kind, is_open=is_open)
    assert contains in text
    assert ("jam kerja" in text or "working hours" in text) is (not is_open)


# --- WhatsApp ----------------------------------------------------------------------

@pytest.mark.parametrize("secret,body,header,ok", [
    ("s3cret", b'{"a":1}', whatsapp.sign(app_secret="s3cret", body=b'{"a":1}'), True),
    ("s3cret", b'{"a":1}', whatsapp.sign(app_secret="other", body=b'{"a":1}'), False),
    ("s3cret", b'{"a":2}', whatsapp.sign(app_secret="s3cret", body=b'{"a":1}'), False),
    ("s3cret", b'{"a":1}', whatsapp.sign(app_secret="s3cret", body=b'{"a":1}').replace("sha256=", "sha1="), False),
    ("s3cret", b'{"a":1}', None, False),
    ("", b'{"a":1}', whatsapp.sign(app_secret="", body=b'{"a":1}'), False),  # no secret configured: never valid
])
def test_whatsapp_signature(secret, body, header, ok):
    assert whatsapp.signature_valid(app_secret=secret, body=body, header=header) is ok


@pytest.mark.parametrize("params,token,answer", [
    ({"hub.mode": "subscribe", "hub.verify_token": "t", "hub.challenge": "42"}, "t", "42"),
    ({"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "42"}, "t", None),
    ({"hub.mode": "subscribe", "hub.verify_token": "t"}, "t", None),
    ({"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "42"}, "", None),
])
def test_whatsapp_verify_handshake(params, token, answer):
    assert whatsapp.verify_handshake(params=params, verify_token=token) == answer


def _value(number, messages, contacts=None):
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"phone_number_id": number, "display_phone_number": "62811"},
        "contacts": contacts or [], "messages": messages}}]}]}


def test_whatsapp_parse_kinds_and_foreign_numbers():
    messages = [
        {"from": "6281", "id": "w1", "timestamp": "1700000000", "type": "text", "text": {"body": " Halo "}},
        {"from": "6281", "id": "w2", "timestamp": "1700000001", "type": "button",
         "button": {"payload": "YES", "text": "Ya, mau"}},
        {"from": "6281", "id": "w3", "timestamp": "1700000002", "type": "interactive",
         "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Buket mawar"}}},
        {"from": "6281", "id": "w4", "timestamp": "1700000003", "type": "audio", "audio": {"id": "a"}},
        {"id": "no-sender", "type": "text", "text": {"body": "x"}},
    ]
    payload = _value("111", messages, contacts=[{"profile": {"name": "Sari"}, "wa_id": "6281"}])
    payload["entry"][0]["changes"].append({"field": "messages", "value": {"metadata": {"phone_number_id": "222"},
                                                                         "messages": [messages[0]]}})
    parsed = whatsapp.parse_webhook(payload, phone_number_id="111")
    assert [(i.external_id, i.kind, i.text, i.name, i.phone) for i in parsed.items] == [
        ("w1", "text", "Halo", "Sari", "+6281"), ("w2", "text", "Ya, mau", "Sari", "+6281"),
        ("w3", "text", "Buket mawar", "Sari", "+6281"), ("w4", "audio", "", "Sari", "+6281")]
    assert parsed.items[0].sent_at == datetime.fromtimestamp(1700000000, tz=UTC)
    assert parsed.foreign_numbers == {"222"}


@pytest.mark.parametrize("payload", [None, [], {"object": "instagram"}, "text"])
def test_whatsapp_parse_refuses_other_payloads(payload):
    with pytest.raises(whatsapp.PayloadError):
        whatsapp.parse_webhook(payload, phone_number_id="1")


@pytest.mark.parametrize("status,body,outcome,code", [
    (400, {"error": {"code": 131047, "message": "Re-engagement message"}}, "permanent", "131047"),
    (400, {"error": {"code": 130429, "message": "Rate limit hit"}}, "retry", "130429"),
    (400, {"error": {"code": 131056, "message": "Pair rate limit hit"}}, "retry", "131056"),
    (400, {"error": {"code": 80007, "message": "Rate limit issues"}}, "retry", "80007"),
    (503, {"error": {"code": 131016, "message": "Service unavailable"}}, "retry", "131016"),
    (500, {"error": {"code": 131000, "message": "Something went wrong"}}, "retry", "131000"),
    (401, {"error": {"code": 190, "message": "Access token has expired"}}, "permanent", "190"),
    (400, {"error": {"code": 100, "message": "Invalid parameter"}}, "permanent", "100"),
    (400, {"error": {"code": 131026, "message": "Message undeliverable"}}, "permanent", "131026"),
    (404, {"error": {"code": 132001, "message": "Template name does not exist"}}, "permanent", "132001"),
    (502, None, "retry", "502"),
    (429, None, "retry", "429"),
    (403, "forbidden", "permanent", "403"),
])
def test_whatsapp_error_classification(status, body, outcome, code):
    result = whatsapp.classify_error(status, body)
    assert (result.outcome, result.code) == (outcome, code)


NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("last,open_", [
    (None, False),
    (NOW - timedelta(minutes=1), True),
    (NOW - timedelta(hours=23, minutes=59), True),
    (NOW - timedelta(hours=24), False),
    (NOW - timedelta(days=3), False),
])
def test_whatsapp_24_hour_window(last, open_):
    assert whatsapp.window_open(last_customer_message_at=last, now=NOW) is open_


@pytest.mark.parametrize("text,expected", [
    ("Halo Budi,\npesanan Anda siap.", "Halo Budi, pesanan Anda siap."),
    ("a\t\tb     c", "a b c"),
    ("x" * 2000, "x" * 1023 + "…"),
])
def test_whatsapp_template_parameter(text, expected):
    assert whatsapp.template_parameter(text) == expected


# --- Telegram -------------------------------------------------------------------------

def test_telegram_parse_update():
    update = {"update_id": 9, "message": {"message_id": 5, "date": 1700000000, "text": "Halo ",
                                          "from": {"id": 77, "is_bot": False, "first_name": "Sari", "last_name": "W"},
                                          "chat": {"id": 77, "type": "private"}}}
    item = telegram.parse_update(update)
    assert (item.external_id, item.user_id, item.kind, item.text, item.name) == ("77:5", "77", "text", "Halo",
                                                                                 "Sari W")
    photo = {"update_id": 10, "message": {"message_id": 6, "date": 1700000000, "caption": "ini?",
                                          "photo": [{"file_id": "p"}], "from": {"id": 77, "is_bot": False},
                                          "chat": {"id": 77, "type": "private"}}}
    assert (telegram.parse_update(photo).kind, telegram.parse_update(photo).text) == ("photo", "ini?")


@pytest.mark.parametrize("update", [
    {"update_id": 1, "edited_message": {"message_id": 1, "chat": {"id": 1}, "text": "x"}},
    {"update_id": 1, "callback_query": {"id": "1"}},
    {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 2, "is_bot": True}, "text": "x"}},
    {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 2}, "new_chat_members": []}},
])
def test_telegram_updates_that_are_not_customer_messages(update):
    assert telegram.parse_update(update) is None


@pytest.mark.parametrize("status,body,outcome,retry_after", [
    (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
           "parameters": {"retry_after": 7}}, "retry", 7.0),
    (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}, "permanent", None),
    (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}, "permanent", None),
    (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, "permanent", None),
    (502, None, "retry", None),
    (500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}, "retry", None),
])
def test_telegram_error_classification(status, body, outcome, retry_after):
    result = telegram.classify_error(status, body)
    assert (result.outcome, result.retry_after) == (outcome, retry_after)


@pytest.mark.parametrize("expected,header,ok", [
    ("abc", "abc", True), ("abc", "abd", False), ("abc", None, False), ("", "", False)])
def test_telegram_secret(expected, header, ok):
    assert telegram.secret_valid(expected=expected, header=header) is ok


@pytest.mark.parametrize("token,bot_id", [
    ("7000000001:AAHtokenOfTenantA_abcdefghijklmnopqrs", "7000000001"), ("nonsense", ""), ("123:short", "")])
def test_telegram_bot_id(token, bot_id):
    assert telegram.bot_id_of(token) == bot_id


# --- secrets at rest ---------------------------------------------------------------

def test_encryption_round_trip_and_masking(settings):
    token = encrypt("EAAG-secret-token-1234")
    assert token.startswith("fernet:") and "EAAG" not in token
    assert decrypt(token) == "EAAG-secret-token-1234"
    assert encrypt("EAAG-secret-token-1234") != token  # a fresh IV each time
    assert mask("EAAG-secret-token-1234") == "••••1234" and mask("short") == "••••" and mask("") == ""


def test_a_configured_key_list_rotates(settings):
    old = derived_key("old-secret").decode()
    new = derived_key("new-secret").decode()
    settings.SECRETS_ENCRYPTION_KEY = old
    stored = encrypt("tok")
    settings.SECRETS_ENCRYPTION_KEY = f"{new},{old}"
    assert decrypt(stored) == "tok"  # the old key still reads
    settings.SECRETS_ENCRYPTION_KEY = new
    from agent_project.lib.encryption import SecretUnreadable

    with pytest.raises(SecretUnreadable):
        decrypt(stored)
