"""The word lists of the analysis: chat spellings written out (for the keyword side and for the
embedder), the built-in synonym groups of a shop's everyday words, and the stopwords a query
drops. Data only: ``knowledge.analysis.tokens`` applies them. Changing a list that chunks are
analysed with needs ``kb_reindex --reanalyse``.
"""

from __future__ import annotations


# Chat spellings (WhatsApp Indonesian) and the words they stand for, in chunks and queries
# alike, so "hrg ongkirnya brp?" searches for "harga" and "kirim". Only unambiguous forms: "km"
# (kamu / kilometre), "lg" (lagi / LG), "dp", "hr" and "org" stay as written. A form may
# carry "-nya" ("ongkirnya"). "ongkir" (ongkos kirim) becomes "kirim" alone: a knowledge base
# says "biaya", "tarif" or "ongkos", and a query word it lacks counts against every shipping
# passage. Changing this list needs `kb_reindex --reanalyse`.
CHAT_FORMS = {
    "brp": "berapa", "yg": "yang", "bs": "bisa", "gmn": "gimana", "gmna": "gimana", "dmn": "dimana",
    "kpn": "kapan", "sy": "saya", "dgn": "dengan", "utk": "untuk", "jg": "juga", "udh": "udah", "sdh": "sudah",
    "blm": "belum", "tdk": "tidak", "gk": "gak", "krn": "karena", "tp": "tapi", "bgt": "banget",
    "bln": "bulan", "thn": "tahun", "hrg": "harga", "brg": "barang", "tf": "transfer", "trf": "transfer",
    "rek": "rekening", "norek": "nomor rekening", "ongkir": "kirim", "gratong": "gratis kirim",
    "skrg": "sekarang", "bsk": "besok", "tgl": "tanggal", "jml": "jumlah", "bnyk": "banyak", "hrs": "harus",
    "knp": "kenapa", "bgmn": "bagaimana", "brapa": "berapa", "kalo": "kalau", "klo": "kalau", "pke": "pakai",
    "pake": "pakai", "dpt": "dapat", "dapet": "dapat", "sampe": "sampai", "nyampe": "sampai", "lowker": "lowongan",
    "seken": "second", "pesen": "pesan", "mksd": "maksud", "almt": "alamat", "trus": "terus", "trs": "terus",
}


# For the embedder the words themselves, not what the keyword side searches: "ongkir" is "ongkos kirim".
EMBEDDING_FORMS = {**CHAT_FORMS, "ongkir": "ongkos kirim", "gratong": "gratis ongkos kirim", "norek": "nomor rekening"}


# Words a shop's knowledge base and its customers use for the same thing, in Indonesian
# and in English: a tourist asks a Bali shop "how long is the warranty?" and its knowledge
# base says "garansi"; an English knowledge base is asked "ongkirnya berapa?". The English
# MiniLM embedder cannot bridge the two languages, so the keyword side does, for a shop's
# everyday words. A query word that none of the tenant's chunks uses is searched as the
# words of its group they do use (selectors.keyword.term_weights); a word the chunks use is
# searched as it is. English is not stemmed: its inflected forms are listed. Words are
# stemmed here as chunks are, so a group may name the form a knowledge base writes
# ("pengembalian" is searched as "kembali"). Only words whose meaning in a shop is
# unambiguous: "pesan" (order / message) has no English, "book" (buku / booking) none.
SYNONYMS = (
    # money
    "biaya ongkos tarif cost costs fee fees charge charges",
    "harga price prices pricing",
    "bayar pembayaran payment payments pay paying paid",
    "diskon discount discounts",
    "gratis free",
    "murah cheap",
    "mahal expensive",
    "cicilan installment installments",
    "kartu card cards",
    "kredit credit",
    "tunai cash",
    "nota struk invoice invoices receipt receipts",
    "pengembalian retur refund refunds return returns",
    # goods and stock
    "stok stock tersedia ready available availability",
    "produk product products",
    "barang item items goods",
    "ukuran size sizes",
    "warna color colors colour colours",
    "bahan material materials fabric",
    "berat weight",
    "asli ori original genuine authentic",
    "bekas second used preloved",
    "baru new",
    "kualitas quality",
    "rusak cacat broken damaged defect defects defective faulty",
    "tukar ganti exchange replace replacement",
    "garansi warranty guarantee jaminan",
    "servis layanan service services repair repairs perbaikan reparasi",
    "jual sell sells selling sale",
    "beli buy buying purchase purchases bought",
    "pesan order orders ordering",
    "batal cancel cancels cancelled canceled cancellation",
    # shipping
    "antar kirim pengiriman ship ships shipping shipped deliver delivers delivery delivered",
    "kurir courier couriers ekspedisi expedition",
    "resi lacak tracking track",
    # place and time
    "alamat lokasi address location located",
    "toko shop store",
    "cabang branch branches outlet outlets gerai",
    "parkir parking",
    "buka open opens opening",
    "tutup close closes closed closing",
    "jam waktu hour hours time",
    "hari day days",
    "minggu week weeks",
    "bulan month months",
    "tahun year years",
    "libur holiday holidays",
    "jadwal schedule schedules",
    # contact and accounts
    "hp handphone ponsel smartphone",
    "wa whatsapp",
    "telepon telpon phone call",
    "nomor number",
    "akun account",
    "sandi password",
    "kode code",
    "pelanggan customer customers",
    "komplain keluhan complaint complaints complain",
    "konfirmasi confirm confirmation",
    "cara metode method methods",
    "terima accept accepts accepted",
    # hospitality
    "reservasi booking reservation reserve",
    "kamar room rooms",
    "sarapan breakfast",
    "makanan food meal meals",
    "minuman drink drinks beverage beverages",
    "tiket ticket tickets",
    "anak child children kid kids",
    "dewasa adult adults",
    "sewa rent rental",
    # who and what the business is
    "pemilik milik punya owner owners pendiri founder founders",
    "lowongan karier karir career careers vacancy vacancies job jobs rekrutmen recruitment",
    "aplikasi app apps",
    "anggota member members membership",
    "poin point points",
    "promo promosi promotion promotions voucher vouchers",
    # food and drink
    "kopi coffee",
    "teh tea",
    "susu milk",
    "cokelat coklat chocolate",
    "gula sugar",
    "biji beans bean",
    # goods, care and repairs
    "baterai batre battery batteries",
    "layar screen",
    "casing case cases",
    "handuk towel towels",
    "kasur ranjang bed beds",
    "setrika iron ironing",
    "sepatu shoes shoe sneakers",
    "tas bag bags",
    "kulit skin",
    "rambut hair",
    "jerawat acne pimple pimples",
    "hamil pregnant pregnancy",
    "bayi baby babies",
    "dokter doctor doctors",
    # travel and stays
    "kolam pool",
    "peliharaan pet pets",
    "rokok merokok smoke smoking",
    "bandara airport",
    "mobil car cars",
    "motor motorbike motorcycle",
    "sepeda bike bicycle",
)


# Words of the conversation around a question rather than of its subject: greetings,
# forms of address, question words, particles, pronouns (Indonesian and English). A
# customer writes "Halo kak, toko buka jam berapa ya?"; no passage answers "halo" or
# "berapa", and counting such words in the query's weight made every passage of a small
# knowledge base look irrelevant. Only queries drop them; chunks are indexed whole.
INDONESIAN_STOPWORDS = frozenset("""
    halo hallo hai pagi siang sore malam selamat assalamualaikum permisi
    kak kakak ka min mimin gan sis bro mas mbak mba pak bu bapak ibu om tante
    ya yah dong sih nih deh kah lah tuh kok nah loh yuk oke
    tolong mohon terima kasih makasih
    apa apakah berapa kapan bagaimana gimana mana dimana kemana siapa kenapa mengapa
    saya aku gue gw kami kita anda kamu situ
    yang dan atau di ke dari untuk buat ini itu juga sudah udah belum masih akan
    bisa boleh ada mau kalau kalo gak ga nggak ngga enggak engga
""".split())
ENGLISH_STOPWORDS = frozenset("""
    hi hello hey ok okay thanks thank please pls sir madam
    what when where which who why how is are am was were be been do does did can could would will should
    the a an you your yours i my me we our us it its this that these those there here
    have has had get got any some of in on at to for from with by about and or if so also just
""".split())
QUERY_STOPWORDS = INDONESIAN_STOPWORDS | ENGLISH_STOPWORDS
# "berapa lama" / "how long" ask for a quantity: the answer gives the quantity ("12 bulan"),
# not the word. Dropped only right after "berapa" or "how" ("produk lama" keeps it).
QUANTITY_WORDS = frozenset(
    "lama lamanya banyak banyaknya kali jauh jauhnya besar besarnya long many much far often".split())
