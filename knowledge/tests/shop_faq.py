"""A shop's FAQ written twice, in Indonesian and in English, and the questions its
customers ask in either language: each question names the entry that answers it.
Used by the cross-language search tests and by ``bench_knowledge_quality.py --shop``.
The two knowledge bases say the same things; the questions are worded as customers
write on WhatsApp, not copied from the entries."""

from __future__ import annotations

ENTRIES = {
    "id": [
        ("Garansi", "Semua produk bergaransi resmi 12 bulan. Klaim garansi cukup bawa nota pembelian ke toko."),
        ("Pembayaran", "Pembayaran bisa lewat transfer bank BCA, QRIS, atau tunai di kasir. Cicilan 0% tersedia "
                       "untuk kartu kredit."),
        ("Jam buka", "Toko buka setiap hari pukul 09.00 sampai 21.00. Hari libur nasional toko tutup."),
        ("Pengiriman", "Pengiriman ke seluruh Indonesia lewat JNE dan J&T. Biaya pengiriman dihitung dari berat "
                       "paket. Nomor resi dikirim lewat WhatsApp."),
        ("Retur", "Barang yang rusak atau cacat bisa ditukar dalam 7 hari. Pengembalian dana diproses 3 hari kerja."),
        ("Alamat", "Alamat toko: Jl. Sudirman No. 10, Denpasar, Bali. Parkir gratis untuk pelanggan."),
        ("Ukuran", "Ukuran baju tersedia S, M, L dan XL. Tabel ukuran ada di foto produk."),
        ("Diskon", "Diskon 10% untuk pembelian pertama dengan kode promo BARU10."),
    ],
    "en": [
        ("Warranty", "All products come with an official 12-month warranty. Bring your receipt to the store to "
                     "make a claim."),
        ("Payment", "We accept bank transfer, QRIS and cash at the cashier. 0% installments are available for "
                    "credit cards."),
        ("Opening hours", "The shop is open every day from 9 am to 9 pm. We are closed on national holidays."),
        ("Shipping", "We ship across Indonesia with JNE and J&T. Shipping costs depend on the parcel's weight. The "
                     "tracking number is sent on WhatsApp."),
        ("Returns", "Damaged or defective items can be exchanged within 7 days. Refunds are processed in 3 working "
                    "days."),
        ("Address", "Our address: Jl. Sudirman No. 10, Denpasar, Bali. Free parking for customers."),
        ("Sizes", "Shirts come in sizes S, M, L and XL. The size chart is in the product photos."),
        ("Discount", "10% discount on your first purchase with promo code BARU10."),
    ],
}

#: The same entry in the other language.
ANSWER_IN = {
    "Garansi": "Warranty", "Pembayaran": "Payment", "Jam buka": "Opening hours", "Pengiriman": "Shipping",
    "Retur": "Returns", "Alamat": "Address", "Ukuran": "Sizes", "Diskon": "Discount",
}

#: (question, the Indonesian entry that answers it)
QUESTIONS = {
    "id": [
        ("berapa lama garansinya?", "Garansi"), ("ada garansi gak kak?", "Garansi"),
        ("bisa bayar pakai kartu kredit?", "Pembayaran"), ("bisa cicilan?", "Pembayaran"),
        ("bisa bayar tunai?", "Pembayaran"),
        ("tokonya buka jam berapa?", "Jam buka"), ("hari libur buka gak?", "Jam buka"),
        ("ongkir ke jakarta berapa?", "Pengiriman"), ("bisa kirim ke surabaya?", "Pengiriman"),
        ("nomor resi saya mana?", "Pengiriman"),
        ("barang rusak bisa ditukar?", "Retur"), ("bisa refund?", "Retur"),
        ("alamat tokonya dimana?", "Alamat"), ("ada parkir?", "Alamat"),
        ("ukurannya apa saja?", "Ukuran"), ("ada diskon?", "Diskon"), ("kode promonya apa?", "Diskon"),
    ],
    "en": [
        ("how long is the warranty?", "Garansi"), ("do you have a warranty", "Garansi"),
        ("can I pay by credit card?", "Pembayaran"), ("what payment methods do you accept?", "Pembayaran"),
        ("installment available?", "Pembayaran"),
        ("what time do you open?", "Jam buka"), ("opening hours", "Jam buka"),
        ("are you open on holidays?", "Jam buka"),
        ("how much is shipping to Jakarta?", "Pengiriman"), ("do you deliver to Surabaya?", "Pengiriman"),
        ("where is my tracking number?", "Pengiriman"),
        ("can I return a damaged item?", "Retur"), ("how do I get a refund?", "Retur"),
        ("can I exchange a broken product", "Retur"),
        ("where is your store?", "Alamat"), ("what is your address", "Alamat"), ("is there parking?", "Alamat"),
        ("what sizes do you have?", "Ukuran"), ("size chart", "Ukuran"),
        ("any discount?", "Diskon"), ("do you have a promo code", "Diskon"),
    ],
}

#: Questions the FAQ does not answer, in either language: no entry may look relevant.
UNANSWERED = {
    "id": ["jual laptop gak?", "boleh bawa anjing?", "password wifi apa?", "ada makanan vegan?"],
    "en": ["do you sell laptops?", "can I bring my dog?", "what is the wifi password", "do you have vegan food?"],
}


def answer(entry: str, kb_language: str) -> str:
    """The title of the entry answering ``entry``'s question in the ``kb_language`` FAQ."""
    return entry if kb_language == "id" else ANSWER_IN[entry]
