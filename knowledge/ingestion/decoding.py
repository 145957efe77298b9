"""Bytes of a text file to text: BOMs, UTF-16 without one, UTF-8, text that is UTF-8 but for
a few lines, and the legacy single-byte encodings the shops' exports use (cp1252 first). A file
that looks binary is refused. Markdown, plain text and CSV/TSV read through ``decode_text``.
"""

from __future__ import annotations

import re

from knowledge.ingestion.common import DocumentError

#: Multi-byte encodings a detector proposes for short Latin text ("caf\xe9" read as UTF-16, "\xa35" as cp932);
#: taken only when cp1252 is no plausible reading and the sample has enough non-ASCII bytes to judge by.
_MULTIBYTE = ("utf_16", "utf_32", "cp932", "shift_jis", "euc_jp", "iso2022", "gb2312", "gbk", "gb18030", "hz",
              "big5", "cp950", "cp949", "euc_kr", "johab")
_NON_LATIN_SINGLE_BYTE = ("cp1251", "cp1253", "cp1255", "cp1256", "iso8859_5", "iso8859_6", "iso8859_7", "iso8859_8")
_ASCII = bytes(range(128))
_BINARY_SAMPLE = 8192
_UNREADABLE_BINARY = "This file looks like a binary file, not text. Save it as plain text (UTF-8) and upload it again."


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """Windows "Unicode" exports may carry no BOM; read as UTF-8 they would "succeed" with a NUL every other
    character. Latin text in UTF-16 has NUL as its high byte: at odd offsets (LE) or even ones (BE)."""
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    even_nuls, odd_nuls = sample[0:pairs * 2:2].count(0), sample[1:pairs * 2:2].count(0)
    for encoding, high, low in (("utf-16-le", odd_nuls, even_nuls), ("utf-16-be", even_nuls, odd_nuls)):
        if high >= pairs * 0.3 and low <= pairs * 0.05:
            try:
                text = data[:len(data) // 2 * 2].decode(encoding)
            except UnicodeDecodeError:
                return None
            # ASCII words separated by NULs ("hello\0world\0") pass the count above, and read as UTF-16
            # they are CJK-looking noise made of two printable ASCII bytes each; real text outside Latin-1
            # (Thai, CJK) rarely is. Such bytes are left to the UTF-8 reading, whose NULs mark them binary.
            wide = [ord(c) for c in text[:2048] if ord(c) > 0xFF]
            if wide and sum(0x20 <= c >> 8 <= 0x7E and 0x20 <= c & 0xFF <= 0x7E for c in wide) >= len(wide) * 0.9:
                return None
            return text, encoding
    return None


def _reads_as_latin(text: str) -> bool:
    """cp1252 decodes almost any byte string, Cyrillic or Greek too; but Latin-script text is mostly ASCII
    letters, whereas cp1251/cp1253/... text read as cp1252 is nearly all accented letters ("Ïðèâåò")."""
    letters = [c for c in text[:20_000] if c.isalpha()]
    return sum(c > "\x7f" for c in letters) <= len(letters) * 0.3


def _decode_legacy(data: bytes) -> tuple[str, str]:
    """Bytes that are not UTF-8 and carry no BOM. The businesses here write Indonesian or English, so their
    legacy files are overwhelmingly Windows "ANSI" (cp1252); a detector guessing on a short sample picks
    UTF-16, cp437 or cp932 for them, so cp1252 is tried first and the detector only asked when it does not fit."""
    try:
        cp1252 = data.decode("cp1252")  # Python refuses cp1252's five undefined bytes, so no C1 controls get through
    except UnicodeDecodeError:
        cp1252 = None
    if cp1252 is not None and _reads_as_latin(cp1252):
        return cp1252, "cp1252"
    from charset_normalizer import from_bytes

    sample = data[:200_000]
    best = from_bytes(sample).best()
    if best is not None:
        encoding = best.encoding.replace("-", "_").lower()
        if encoding.startswith(("cp125", "iso8859", "latin", "mac_", "windows_125", "ascii")) and (
                encoding not in _NON_LATIN_SINGLE_BYTE):
            # On short samples the detector cannot tell cp1252 from its Central-European/Baltic siblings.
            encoding = "cp1252"
        # Here cp1252 has already failed; a multi-byte guess still needs a sample long enough to judge by.
        confident = best.chaos <= 0.1 and len(sample.translate(None, _ASCII)) >= 32
        if not encoding.startswith(_MULTIBYTE) or confident:
            try:
                return data.decode(encoding), encoding
            except (UnicodeDecodeError, LookupError):
                pass
    if cp1252 is not None:
        return cp1252, "cp1252"
    return data.decode("latin-1"), "latin-1"


def _mostly_utf8(data: bytes) -> str | None:
    """Text that is UTF-8 but for a few lines: a cp1252 line appended to a UTF-8 export, or an export cut in the
    middle of a character. Read as cp1252 throughout, every correct accent and dash of it would turn to mojibake
    ("cafÃ©"). Decided line by line: a line that is valid UTF-8 is read as UTF-8, any other as cp1252, and a
    character cut at the very end is dropped. Only when the UTF-8 evidence is strong: a line holding a character of
    three bytes or more (cp1252 text almost never makes one: an accented letter and two symbols in a row), or more
    valid non-ASCII lines than invalid ones; else None (a cp1252 file with one accidental pair, "CAFÉ”", stays
    cp1252)."""
    lines = data.split(b"\n")
    parts, good, bad, strong = [], 0, 0, False
    for index, line in enumerate(lines):
        if line.isascii():
            parts.append(line.decode("ascii"))
            continue
        try:
            parts.append(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if index == len(lines) - 1 and exc.reason == "unexpected end of data":
                try:  # the file ends inside a character: keep what precedes it
                    parts.append(line[:exc.start].decode("utf-8"))
                    continue
                except UnicodeDecodeError:
                    pass
            bad += 1
            parts.append(line.decode("cp1252", errors="replace"))
            continue
        good += 1
        strong = strong or bool(_UTF8_THREE_BYTES.search(line))
    if not good or not (strong or good > bad):
        return None
    return "\n".join(parts)


_UTF8_THREE_BYTES = re.compile(rb"[\xe0-\xf4][\x80-\xbf]{2}")


def _looks_binary(text: str) -> bool:
    """A NUL in the first 8 KB (git's and grep's test), or many control characters other than tab, newlines and
    form feed: an image or archive renamed to .txt or .csv, which would otherwise be indexed as noise."""
    sample = text[:_BINARY_SAMPLE]
    if "\x00" in sample:
        return True
    controls = sum(1 for c in sample if (c < " " and c not in "\t\n\r\f") or "\x7f" <= c <= "\x9f")
    return controls > len(sample) * 0.1


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes of a text file: UTF-32/16 or UTF-8 with a BOM, UTF-16 without one, UTF-8, else a legacy
    single-byte encoding (cp1252 first); bytes that are overwhelmingly UTF-8 stay UTF-8 (``_mostly_utf8``). A file
    that still looks binary is refused; a stray NUL further on is dropped, since PostgreSQL cannot store it."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        text, encoding = data.decode("utf-32", errors="replace"), "utf-32"
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text, encoding = data.decode("utf-16", errors="replace"), "utf-16"
    elif data.startswith(b"\xef\xbb\xbf"):
        text, encoding = data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    elif (utf16 := _utf16_without_bom(data)) is not None:
        text, encoding = utf16
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            repaired = _mostly_utf8(data)
            text, encoding = (repaired, "utf-8") if repaired is not None else _decode_legacy(data)
    if _looks_binary(text):
        raise DocumentError(422, "file_unreadable", _UNREADABLE_BINARY)
    return text.replace("\x00", ""), encoding
