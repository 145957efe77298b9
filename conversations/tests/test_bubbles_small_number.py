"""(Found in review, now fixed.) _LIST_NUMBER: any 1-2 digit number with a period is taken for a list item, wherever it is."""
from conversations.bubbles import limits_for, split_bubbles


def test_sentence_ending_in_a_small_number_still_ends_a_bubble():
    first = "Toko kami ada di Jl. Merdeka No. 12 Bandung, tepatnya di Mall Paris Van Java lantai 2."
    second = "Parkir tersedia gratis di depan toko, untuk mobil maupun motor, setiap hari sampai malam."
    limits = limits_for("sms")  # 160 characters
    bubbles = split_bubbles(f"{first} {second}", max_chars=limits.max_chars, max_bubbles=limits.max_bubbles)
    # observed: ['... lantai 2. Parkir tersedia gratis di depan toko, untuk', 'mobil maupun motor, ...'] (mid-sentence)
    assert bubbles == [first, second], bubbles


def test_an_inline_list_keeps_its_items_together_to_the_last():
    reply = "Caranya: 1. Buka aplikasi kami. 2. Pilih ukuran buket. 3. Bayar. Pesanan dikirim hari ini juga ya Kak."
    bubbles = split_bubbles(reply, max_chars=60)
    assert not [b for b in bubbles if b.rstrip().endswith((" 1.", " 2.", " 3."))], bubbles
    assert "".join(bubbles).replace(" ", "") == reply.replace(" ", "")
