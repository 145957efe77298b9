"""How text becomes search terms, the same way for chunks and for queries.

Lower-cased ``\\w+`` tokens, each stemmed with Sastrawi (PostgreSQL has no
Indonesian stemmer, so "pengiriman", "dikirim" and "kirim" are made one term
here and PostgreSQL only sees the result through the ``simple`` configuration).
English words mostly pass through Sastrawi unchanged. Pure: no ORM, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MAX_TERM_LENGTH = 60  # longer "words" are ids, hashes or base64: not worth indexing
# Word characters plus combining marks (Arabic harakat, Latin accents typed as
# combining characters), which \w alone would split words at.
_TOKEN = re.compile(r"(?:\w|[\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670])+", re.UNICODE)


class _SetDictionary:
    """Sastrawi's ArrayDictionary keeps ~30k root words in a *list* (O(n) per lookup,
    ~15 ms per unseen word); a set makes stemming ~1000x faster, same results."""

    def __init__(self, words):
        self.words = {w for w in words if w and w.strip()}

    def contains(self, word):
        return word in self.words


# The literal letters a Sastrawi prefix rule's pattern opens with: r'^meng([aiueo])(.*)$'
# -> "meng". Every one of its disambiguators starts by matching the word against one such
# pattern and returns nothing when it fails.
_RULE_PATTERN = re.compile(r"re\.match\(r'\^?([a-z]*)")


class _PrefixGuard:
    """A Sastrawi prefix visitor that is only consulted for words starting with one of
    its rules' literal prefixes. Sastrawi tries all ~40 prefix visitors, one regex each,
    up to three times per word; a visitor whose rules cannot match has no effect, so
    skipping it changes nothing (the test compares with plain Sastrawi word by word)
    and stemming runs ~1.8x faster."""

    def __init__(self, visitor, prefixes: tuple[str, ...]):
        self.visitor, self.prefixes = visitor, prefixes

    def visit(self, context):
        if context.current_word.startswith(self.prefixes):
            self.visitor.visit(context)


class _PrefixDispatch:
    """Sastrawi's prefix visitors as one: only those that can apply to the word are
    consulted, in Sastrawi's order (the guarded ones whose literal prefix the word has,
    found by its first letter, and every unguarded one). Sastrawi's loop over them
    (``Context.accept_prefix_visitors``) stops after the first visitor that removes
    something, reaches a dictionary word or stops the process; a visitor that cannot
    apply changes nothing, so skipping it changes none of those tests, except before the
    first visitor, where the loop stops at once on a word already in the dictionary: so
    does this. ~40 visitor calls a word become ~3 (the test compares with plain Sastrawi
    word by word)."""

    def __init__(self, visitors: list):
        self.visitors = visitors
        unguarded = [v for v in visitors if not isinstance(v, _PrefixGuard)]
        letters = {p[:1] for v in visitors if isinstance(v, _PrefixGuard) for p in v.prefixes}
        self._unguarded = unguarded
        self._by_letter = {
            letter: [v for v in visitors
                     if not isinstance(v, _PrefixGuard) or any(p.startswith(letter) for p in v.prefixes)]
            for letter in letters}

    def visit(self, context):
        word = context.current_word
        before = len(context.removals)
        first = True
        for visitor in self._by_letter.get(word[:1], self._unguarded):
            if isinstance(visitor, _PrefixGuard):
                if not word.startswith(visitor.prefixes):
                    continue
                visitor = visitor.visitor
            if first and visitor is not self._first_inner and (
                    context.dictionary.contains(word) or context.process_is_stopped):
                return  # Sastrawi's loop would have stopped after its (skipped) first visitor
            first = False
            visitor.visit(context)
            if (context.dictionary.contains(context.current_word) or context.process_is_stopped
                    or len(context.removals) > before):
                return

    @property
    def _first_inner(self):
        first = self.visitors[0] if self.visitors else None
        return first.visitor if isinstance(first, _PrefixGuard) else first


def _rule_prefix(disambiguator) -> str | None:
    import inspect

    try:
        found = _RULE_PATTERN.search(inspect.getsource(type(disambiguator).disambiguate))
    except (OSError, TypeError):  # no source: leave the visitor unguarded
        return None
    return found.group(1) if found and found.group(1) else None


def _guard_prefix_visitors(visitors: list) -> list:
    guarded = []
    for visitor in visitors:
        rules = getattr(visitor, "disambiguators", None)  # plain prefixes (di-, ke-, se-) have none
        prefixes = [_rule_prefix(rule) for rule in rules or ()]
        guarded.append(_PrefixGuard(visitor, tuple(prefixes)) if prefixes and all(prefixes) else visitor)
    return guarded


@lru_cache(maxsize=1)
def _dictionary() -> _SetDictionary:
    from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

    return _SetDictionary(StemmerFactory().get_words())


def plain_stemmer():
    """Sastrawi as it comes, on the set dictionary: the reference ``_stemmer`` is tested against."""
    from Sastrawi.Stemmer.Stemmer import Stemmer

    return Stemmer(_dictionary())


class _PlainWordRe:
    """Stands in for ``re`` in Sastrawi's visitor modules (``_VISITOR_MODULES``). Every
    affix they remove is recorded with ``re.sub(stem, '', word, 1)``: the word's stem used
    as a *pattern*, so nearly every new word compiled a regex of its own (2,092 compiles
    analysing the 272 FacQA passages; they also pushed Sastrawi's ~80 fixed patterns out
    of ``re``'s cache). Sastrawi only ever sees ASCII letters (``stem``), which are never
    special in a pattern, so ``str.replace`` gives the same result; any other pattern goes
    to ``re`` itself (the test compares both on every test word)."""

    def __getattr__(self, name):
        return getattr(re, name)

    @staticmethod
    def sub(pattern, repl, string, count=0, flags=0):
        if (not flags and type(pattern) is str and type(repl) is str and type(string) is str
                and pattern.isascii() and pattern.isalpha() and "\\" not in repl):
            return string.replace(pattern, repl, count or -1)
        return re.sub(pattern, repl, string, count=count, flags=flags)


_VISITOR_MODULES = tuple(f"Sastrawi.Stemmer.Context.Visitor.{name}" for name in (
    "AbstractDisambiguatePrefixRule", "RemovePlainPrefix", "RemoveDerivationalSuffix",
    "RemoveInflectionalParticle", "RemoveInflectionalPossessivePronoun"))


def _use_plain_word_re(on: bool = True) -> None:
    import importlib

    for name in _VISITOR_MODULES:
        importlib.import_module(name).re = _PlainWordRe() if on else re


@lru_cache(maxsize=1)
def _stemmer():
    _use_plain_word_re()
    stemmer = plain_stemmer()
    visitors = stemmer.visitor_provider.prefix_pisitors  # (sic) this stemmer's own list
    visitors[:] = [_PrefixDispatch(_guard_prefix_visitors(visitors))]
    return stemmer


# Every rule Sastrawi has removes one of these prefixes (plain, disambiguated, "kau"/"ku",
# "er", or an infix after a first consonant) or these suffixes: a word matching neither
# comes back unchanged, so it skips the ~40 rule objects (measured on the FacQA vocabulary:
# 44% of its words, stemming 42% faster; the test compares with Sastrawi word by word).
_MAY_HAVE_PREFIX = re.compile(r"^(?:di|ke|se|be|te|me|pe|ku|kau|er|[bcdfghjklmnpqrstvwxyz](?:el|em|er|in)[aiueo])")
_MAY_HAVE_SUFFIX = re.compile(r"(?:lah|kah|tah|pun|ku|mu|nya|is|isme|isasi|i|kan|an)$")


def may_have_affix(word: str) -> bool:
    return bool(_MAY_HAVE_PREFIX.match(word) or _MAY_HAVE_SUFFIX.search(word))


# Everyday shop words Sastrawi stems to another root that is in its dictionary: "memesan" (to
# order) to "mes", "pemesanan" to "mesan", "mengemas" (to pack) to "emas" (gold), "pengecekan"
# to "kece", "perawatan" to "awat". Found by stemming the affixed forms of 40 shop verbs (the
# others come out right); a particle or possessive after them is dropped as Sastrawi drops it.
# Changing this list needs `kb_reindex --reanalyse`.
STEM_FIXES = {
    **dict.fromkeys(["memesan", "pemesan", "pemesanan", "dipesan", "memesankan", "dipesankan"], "pesan"),
    **dict.fromkeys(["mengecek", "pengecekan"], "cek"),
    **dict.fromkeys(["mengemas", "pengemasan", "mengemaskan"], "kemas"),
    "perawatan": "rawat",
}
_PARTICLE = re.compile(r"(?:nya|lah|kah|pun|ku|mu)$")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    fixed = STEM_FIXES.get(word) or STEM_FIXES.get(_PARTICLE.sub("", word))
    if fixed:
        return fixed
    # Sastrawi knows Indonesian morphology only: other scripts, numbers, codes pass as they are.
    if len(word) <= 3 or not (word.isascii() and word.isalpha()) or not may_have_affix(word):
        return word
    stemmed = _stemmer().stem(word)
    return stemmed if stemmed and " " not in stemmed else word


# Prefixes and suffixes a misspelt word may still carry, for ``root_guesses``; a nasal prefix
# before a vowel may stand for a root's dropped first letter (peng+irim = kirim, pem+akai =
# pakai, pen+ulis = tulis, peny+ewa = sewa).
_GUESS_PREFIXES = (("meny", "s"), ("peny", "s"), ("meng", "k"), ("peng", "k"), ("meng", ""), ("peng", ""),
                   ("mem", "p"), ("pem", "p"), ("mem", ""), ("pem", ""), ("men", "t"), ("pen", "t"), ("men", ""),
                   ("pen", ""), ("ber", ""), ("ter", ""), ("per", ""), ("me", ""), ("pe", ""), ("di", ""), ("ke", ""))
_GUESS_SUFFIXES = ("kannya", "annya", "nya", "kan", "an", "i")
MAX_ROOT_GUESSES = 8
# Chat drops the vowel of a prefix: "pmbayaran", "pngiriman", "mngirim", "brapa", "trima", "dkirim". The vowel
# put back makes a word Sastrawi can stem. Only where a prefix's own consonant follows (pem-, pen-, peng-, per-,
# mem-, men-, ber-, ter-; di- before anything but r): English words open with other clusters, and "blank" read as
# "be-lank" had become "bank", "player" "layer".
_DROPPED_PREFIX_VOWEL = {"p": ("e", "mnr"), "m": ("e", "mn"), "b": ("e", "r"), "t": ("e", "r"),
                         "d": ("i", "bcdfghjkmnpstvz")}


def root_guesses(word: str) -> list[str]:
    """Roots a word Sastrawi could not stem may have, by stripping affixes without its
    dictionary: a misspelt affixed word ("pembyaran", "pengirman") is left whole by the stemmer,
    and as a whole it is too far from the stored root ("bayar", "kirim") for a trigram match; a
    guess ("byar", "kirm") is one edit from it. Most stripped first; at most ``MAX_ROOT_GUESSES``."""
    if not (word.isascii() and word.isalpha()):
        return []
    restored = _vowel_restored(word)
    if len(word) < 6:
        return restored
    bodies = [word[:-len(suffix)] for suffix in _GUESS_SUFFIXES
              if word.endswith(suffix) and len(word) - len(suffix) >= 4]
    guesses = []
    for body in [*bodies, word]:
        for prefix, first in _GUESS_PREFIXES:
            rest = body[len(prefix):]
            if body.startswith(prefix) and (not first or rest[:1] in "aiueo"):
                guesses.append(first + rest)
    guesses += bodies
    guesses = [g for g in dict.fromkeys(guesses) if len(g) >= 4 and g != word]
    return list(dict.fromkeys([*restored, *sorted(guesses, key=len)]))[:MAX_ROOT_GUESSES]


def _vowel_restored(word: str) -> list[str]:
    """``word`` with its prefix's dropped vowel put back, as the dictionary knows it: the root of
    "pmbayaran" (pembayaran: "bayar"), or the word itself ("trima": "terima"); first among the
    guesses, as the surest."""
    vowel, next_letters = _DROPPED_PREFIX_VOWEL.get(word[:1], ("", ""))
    if not vowel or len(word) < 4 or word[1] not in next_letters:
        return []
    restored = word[0] + vowel + word[1:]
    root = stem(restored)
    if root == restored:  # a word of its own ("trima": "terima")
        return [root] if _dictionary().contains(root) else []
    # The prefix must take more than the restored letter's neighbour: "bring" (be-ring) and "trial" (te-rial)
    # lose one letter only; "pmbayaran" (pem-bayar-an), "mngirim" (meng-kirim) more. "dkirim" (di-kirim) is
    # the plain prefix di- and keeps the rest whole.
    consumed = len(word) - len(root)
    if len(root) < 4 or not _dictionary().contains(root) or (consumed < 2 and word[0] != "d"):
        return []
    return [root]


def one_edit_apart(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with at most one letter inserted, deleted, replaced or two
    neighbours swapped (Damerau-Levenshtein distance ≤ 1)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] or (a[i + 2:] == b[i + 2:] and a[i:i + 2] == b[i:i + 2][::-1])
    return a[i + 1:] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1:]


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


@lru_cache(maxsize=1)
def _synonym_groups() -> dict[str, tuple[str, ...]]:
    groups = {}
    for line in SYNONYMS:
        stems = tuple(dict.fromkeys(stem(w) for w in line.split()))
        for term in stems:
            groups[term] = tuple(t for t in stems if t != term)
    return groups


@lru_cache(maxsize=1024)
def _synonym_groups_with(extra: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The built-in groups and a tenant's own (``Tenant.synonyms``), analysed as chunks are; a
    term in both has the words of both."""
    groups = {term: dict.fromkeys(others) for term, others in _synonym_groups().items()}
    for line in extra:
        terms = list(dict.fromkeys(t for word in line.split() for t in tokens(word)))
        for term in terms:
            groups.setdefault(term, {}).update(dict.fromkeys(t for t in terms if t != term))
    return {term: tuple(others) for term, others in groups.items() if others}


def synonyms(term: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The other words of an analysed term's synonym group (none for most terms); ``extra``:
    the tenant's own groups (``Tenant.synonyms``), each a string of words."""
    return (_synonym_groups_with(extra) if extra else _synonym_groups()).get(term, ())


def _words(text: str) -> list[str]:
    """Lower-cased tokens of ``text``, chat spellings written out. NFKC first: a PDF's
    ligatures ("mis\ufb01ts"), full-width letters and superscripts become the letters a
    customer types, in chunks and queries alike."""
    out = []
    for token in _TOKEN.findall(unicodedata.normalize("NFKC", text).lower()):
        if len(token) > MAX_TERM_LENGTH or token == "_":
            continue
        full = CHAT_FORMS.get(token) or (token.endswith("nya") and CHAT_FORMS.get(token[:-3]))
        out.extend(full.split() if full else (token,))
    return out


def tokens(text: str) -> list[str]:
    """Analysed terms of ``text`` in order (repeats kept: BM25 counts them)."""
    return [stem(t) for t in _words(text)]


def search_text(text: str) -> tuple[str, int]:
    """The stored form of a chunk: its terms joined by spaces, and how many there are."""
    terms = tokens(text)
    return " ".join(terms), len(terms)


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


def typo_probes(query: str, term: str) -> list[str]:
    """Root guesses for a query term the tenant does not know: from the term and from the
    query's words it was stemmed from (Sastrawi may have half-stemmed a misspelt word:
    "pengembalan" to "embal", while the word itself gives "kembal"). None for a term that is a
    word of Sastrawi's dictionary: a correctly spelt word the tenant does not use is not a typo,
    and its guesses matched unrelated terms ("terbukti" → "bukt" → "buka", "terbang" → "bank")."""
    if _dictionary().contains(term):
        return []
    words = [w for w in _words(query) if w != term and stem(w) == term]
    return list(dict.fromkeys(g for w in (term, *words) for g in root_guesses(w)))[:MAX_ROOT_GUESSES]


_WORD_OF_QUERY = re.compile(r"\w+", re.UNICODE)


def embedding_query(query: str) -> str:
    """The query as the embedder is given it: chat spellings written out ("tokonya dmn kak" →
    "tokonya dimana kak", "ongkir" → "ongkos kirim"), the rest as typed. The models learnt the
    written words; on shop-FAQ questions written as customers write (benchmarks/data/
    shop_faq_tune.json) this put the answering entry first by vector for 79.2% against 75.5%."""

    def written_out(match: re.Match) -> str:
        word = match.group(0)
        lower = word.lower()
        if lower in EMBEDDING_FORMS:
            return EMBEDDING_FORMS[lower]
        if lower.endswith("nya") and lower[:-3] in EMBEDDING_FORMS:
            return EMBEDDING_FORMS[lower[:-3]] + "nya"
        return word

    return _WORD_OF_QUERY.sub(written_out, query)


@lru_cache(maxsize=4096)
def name_terms(name: str) -> frozenset[str]:
    """The analysed terms of a business's own name ("Kopi Senja": kopi, senja)."""
    return frozenset(tokens(name or ""))


def query_terms(query: str, context: frozenset[str] = frozenset()) -> list[str]:
    """Distinct terms of a query, in first-seen order, without conversational stopwords,
    the quantity asked for ("berapa lama") or ``context`` terms (the business's own name:
    "kak, kopi senja itu punya siapa?" asks Kopi Senja who owns it, and the entries that
    merely name the shop answer nothing of it), unless nothing else is left: "terima kasih"
    still searches for itself, "kopi senja" for the shop."""
    words = _words(query)
    content = [w for i, w in enumerate(words) if w not in QUERY_STOPWORDS
               and not (w in QUANTITY_WORDS and i and words[i - 1] in ("berapa", "how"))] or words
    terms = list(dict.fromkeys(stem(w) for w in content))
    return [t for t in terms if t not in context] or terms


def looks_indonesian(text: str) -> bool:
    """Whether at least half of the words of ``text`` (numbers aside) are Indonesian: an
    Indonesian stopword, or a root word of Sastrawi's dictionary as written or stemmed.
    English words are mostly not in it ("item", "bank" are); slang is not either, so
    "ongkirnya berapa" is Indonesian by "berapa" alone, "how long is the warranty" is not."""
    words = [w for w in _words(text) if not w.isdigit()]
    if not words:
        return False
    dictionary = _dictionary()
    known = sum(1 for w in words if w in INDONESIAN_STOPWORDS or dictionary.contains(w) or dictionary.contains(stem(w)))
    return 2 * known >= len(words)


# English words a question in English is made of and an Indonesian one almost never
# holds: ENGLISH_STOPWORDS without the greetings and thanks Indonesians write too ("ok
# kak", "thanks min").
_ENGLISH_MARKERS = ENGLISH_STOPWORDS - frozenset("hi hello hey ok okay thanks thank please pls sir madam".split())


def text_language(text: str) -> str | None:
    """``"id"`` or ``"en"`` when ``text`` is clearly one of them, else None (too short,
    mixed evenly, or another language). English needs two of its function words ("how",
    "is", "the", "do", "you", "to", ...) and more of them than Indonesian words; Indonesian
    needs two Indonesian words (stopwords or dictionary roots, as ``looks_indonesian``)
    and more of them. "how long is the warranty?" is English, "ada garansi gak kak?"
    Indonesian, "warranty?" and "ok" are neither."""
    words = [w for w in _words(text) if not w.isdigit()]
    english = sum(1 for w in words if w in _ENGLISH_MARKERS)
    dictionary = _dictionary()
    indonesian = sum(1 for w in words if w not in _ENGLISH_MARKERS and (
        w in INDONESIAN_STOPWORDS or dictionary.contains(w) or dictionary.contains(stem(w))))
    if english >= 2 and english > indonesian:
        return "en"
    if indonesian >= 2 and indonesian > english:
        return "id"
    return None
