from __future__ import annotations

import re

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from conversations.bubbles import CHANNEL_LIMITS, BubbleStream, limits_for, split_bubbles

CASES = [
    ("short reply stays whole", "Halo Kak, ada yang bisa dibantu?", 320, None,
     ["Halo Kak, ada yang bisa dibantu?"]),
    ("one bubble per paragraph", "Halo Kak!\n\nBuket mawar Rp 350.000.\n\nAda lagi?", 320, None,
     ["Halo Kak!", "Buket mawar Rp 350.000.", "Ada lagi?"]),
    ("blank lines with spaces separate paragraphs too", "Satu.\n   \nDua.", 320, None, ["Satu.", "Dua."]),
    ("long paragraph splits at sentences", "Toko buka jam 09.00 sampai 17.00. Tutup hari Minggu. Libur nasional tutup.",
     35, None, ["Toko buka jam 09.00 sampai 17.00.", "Tutup hari Minggu.", "Libur nasional tutup."]),
    ("sentences are packed while they fit", "Satu. Dua. Tiga. Empat.", 12, None, ["Satu. Dua.", "Tiga. Empat."]),
    ("money is one unit even when words must be split", "Harga paket Rp 1.500.000 saja", 14, None,
     ["Harga paket", "Rp 1.500.000", "saja"]),
    ("no sentence end after dll.", "Kami jual bunga, vas, pita, dll. untuk acara Anda. Hubungi kami.", 50, None,
     ["Kami jual bunga, vas, pita, dll. untuk acara Anda.", "Hubungi kami."]),
    ("no sentence end after Jl. or No.", "Alamat di Jl. Merdeka No. 12 Bandung. Buka tiap hari.", 40, None,
     ["Alamat di Jl. Merdeka No. 12 Bandung.", "Buka tiap hari."]),
    ("no sentence end after a.n. or dsb.", "Transfer a.n. Budi Santoso ke BCA. Lalu kirim bukti, nama, dsb. ke WA.",
     40, None, ["Transfer a.n. Budi Santoso ke BCA.", "Lalu kirim bukti, nama, dsb. ke WA."]),
    ("a URL with dots is never cut", "Katalog di https://toko.id/katalog/2026.pdf?v=1. Terima kasih.", 48, None,
     ["Katalog di https://toko.id/katalog/2026.pdf?v=1.", "Terima kasih."]),
    ("an e-mail address is never cut", "Kirim ke cs.toko@melati.co.id ya. Kami balas cepat.", 36, None,
     ["Kirim ke cs.toko@melati.co.id ya.", "Kami balas cepat."]),
    ("a word longer than the limit stands alone", "Lihat https://toko.id/very/long/path/to/the/catalogue ok", 20,
     None, ["Lihat", "https://toko.id/very/long/path/to/the/catalogue", "ok"]),
    ("a short list stays one bubble", "Pilihan paket:\n- Paket A: Rp 150.000\n- Paket B: Rp 250.000", 320, None,
     ["Pilihan paket:\n- Paket A: Rp 150.000\n- Paket B: Rp 250.000"]),
    ("a long list splits between items, not inside them",
     "Pilihan:\n- Mawar merah 12 tangkai\n- Tulip kuning 10 tangkai\n- Lily putih 5 tangkai", 50, None,
     ["Pilihan:\n- Mawar merah 12 tangkai", "- Tulip kuning 10 tangkai\n- Lily putih 5 tangkai"]),
    ("numbered items are not sentence ends", "1. Pilih buket dan kartu ucapan Anda\n2. Transfer ke rekening kami", 40,
     None, ["1. Pilih buket dan kartu ucapan Anda", "2. Transfer ke rekening kami"]),
    ("a list item keeps its continuation line",
     "- Mawar merah\n  isi 12 tangkai, Rp 350.000\n- Tulip kuning\n  isi 10 tangkai, Rp 500.000", 45, None,
     ["- Mawar merah\n  isi 12 tangkai, Rp 350.000", "- Tulip kuning\n  isi 10 tangkai, Rp 500.000"]),
    ("a code block stays together, blank lines and all",
     "Contoh:\n\n```\ncurl -X POST /chat\n\n-d '{\"a\": 1}'\n```\n\nSelesai.", 20, None,
     ["Contoh:", "```\ncurl -X POST /chat\n\n-d '{\"a\": 1}'\n```", "Selesai."]),
    ("nothing to say gives no bubble", "  \n\n \n", 320, None, []),
    ("the cap merges the overflow into the last bubble", "A1.\n\nA2.\n\nA3.\n\nA4.\n\nA5.", 320, 3,
     ["A1.", "A2.", "A3.\n\nA4.\n\nA5."]),
    ("a question and an exclamation end sentences", "Mau pesan? Bisa! Silakan isi formulir.", 12, None,
     ["Mau pesan?", "Bisa!", "Silakan isi", "formulir."]),
]


@pytest.mark.parametrize("name,text,limit,cap,expected", CASES, ids=[c[0] for c in CASES])
def test_split_bubbles_table(name, text, limit, cap, expected):
    assert split_bubbles(text, max_chars=limit, max_bubbles=cap) == expected


def test_channel_limits():
    assert limits_for("whatsapp") == CHANNEL_LIMITS["whatsapp"]
    assert limits_for("WhatsApp").max_chars < limits_for("web").max_chars
    assert limits_for("unknown-channel") == CHANNEL_LIMITS["web"]


def test_limit_must_be_positive():
    with pytest.raises(ValueError):
        split_bubbles("x", max_chars=0)


# --- properties -----------------------------------------------------------------

SPECIAL_WORDS = ["Rp", "1.500.000", "Rp.", "09.00", "17.30", "dll.", "dsb.", "No.", "Jl.", "a.n.", "Kak!", "ya?",
                 "https://toko.id/a.b?c=1.", "cs@toko.co.id", "-", "1.", "Senin.", "…", "(Rp", "350.000)."]
word = st.one_of(
    st.sampled_from(SPECIAL_WORDS),
    st.text(alphabet="abcdefghijkmnoprstuwyABKMS0123456789.,!?:;()'", min_size=1, max_size=14),
)
separator = st.sampled_from([" ", " ", " ", " ", "\n", "\n\n", "\n- ", "  ", "\n\n\n"])


@st.composite
def replies(draw):
    words = draw(st.lists(word, min_size=0, max_size=80))
    out = []
    for w in words:
        out.append(w)
        out.append(draw(separator))
    return "".join(out)


def _unbreakable(bubble: str) -> bool:
    return len(bubble.split()) == 1 or bool(re.fullmatch(r"(?i)(rp\.?|idr|usd|us\$|sgd) \d\S*", bubble))


@hsettings(max_examples=300, deadline=None)
@given(text=replies(), limit=st.integers(min_value=1, max_value=120))
def test_words_in_order_and_limit_respected(text, limit):
    bubbles = split_bubbles(text, max_chars=limit)
    assert " ".join(bubbles).split() == text.split()
    assert all(b.strip() for b in bubbles)
    for bubble in bubbles:
        assert len(bubble) <= limit or _unbreakable(bubble), (bubble, limit)


@hsettings(max_examples=200, deadline=None)
@given(text=replies(), limit=st.integers(min_value=5, max_value=120), cap=st.integers(min_value=1, max_value=6))
def test_cap_keeps_every_word(text, limit, cap):
    bubbles = split_bubbles(text, max_chars=limit, max_bubbles=cap)
    assert len(bubbles) <= cap
    assert " ".join(bubbles).split() == text.split()
    assert all(b.strip() for b in bubbles)


@hsettings(max_examples=200, deadline=None)
@given(text=replies(), limit=st.integers(min_value=5, max_value=120),
       cap=st.one_of(st.none(), st.integers(min_value=1, max_value=6)), data=st.data())
def test_streaming_gives_the_same_bubbles(text, limit, cap, data):
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(text)), max_size=12)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    stream = BubbleStream(max_chars=limit, max_bubbles=cap)
    streamed = []
    for piece in pieces:
        streamed.extend(stream.feed(piece))
    streamed.extend(stream.finish())
    assert streamed == split_bubbles(text, max_chars=limit, max_bubbles=cap)


def test_streaming_releases_a_paragraph_as_soon_as_it_is_complete():
    stream = BubbleStream(max_chars=320, max_bubbles=5)
    assert stream.feed("Halo Kak! Buket mawar") == []
    assert stream.feed(" Rp 350.000.\n") == []  # one newline: the paragraph may continue
    assert stream.feed("\nOngkir gratis") == ["Halo Kak! Buket mawar Rp 350.000."]
    assert stream.finish() == ["Ongkir gratis"]
