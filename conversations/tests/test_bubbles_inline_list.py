"""(Found in review, now fixed.) docs/chat.md (Bubbles): "a sentence never ends after dll., dsb., No., Jl., a.n. and other
abbreviations, nor after a list number". Only a list number at the very start of a line is
recognised: an inline numbered list, common in chat replies ("Caranya: 1. Buka … 2. Pilih …"),
leaves a bubble ending in a dangling "1." and the item's text in the next bubble."""
import re

from conversations.bubbles import split_bubbles


def test_inline_list_number_does_not_end_a_bubble():
    reply = ("Ada tiga langkah: 1. Buka aplikasi kami dan cari buket mawar merah. "
             "2. Pilih ukuran. 3. Bayar.")
    bubbles = split_bubbles(reply, max_chars=60)
    # observed: ['Ada tiga langkah: 1.', 'Buka aplikasi kami dan cari buket mawar merah. 2.', 'Pilih ukuran. 3. Bayar.']
    assert not [b for b in bubbles if re.search(r"(^|\s)\d{1,2}\.$", b)], bubbles
