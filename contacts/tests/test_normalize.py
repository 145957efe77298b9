"""The pure normalisation core, table-driven."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contacts.normalize import InvalidValue, email_normalize, phone_normalize, region_for_locale


@pytest.mark.parametrize("raw, region, expected", [
    # One Indonesian mobile number, every way customers write it.
    ("0812-3456-7890", "ID", "+6281234567890"),
    ("081234567890", "ID", "+6281234567890"),
    ("6281234567890", "ID", "+6281234567890"),
    ("+62 812-3456-7890", "ID", "+6281234567890"),
    ("+62 (812) 3456 7890", "ID", "+6281234567890"),
    ("0062 812 3456 7890", "ID", "+6281234567890"),
    ("  0812 3456 7890 ", "ID", "+6281234567890"),
    # A Jakarta landline.
    ("(021) 5790 1234", "ID", "+622157901234"),
    ("+62 21 5790 1234", "ID", "+622157901234"),
    # Foreign numbers: with their country code, whatever the tenant's region...
    ("+1 650-253-0000", "ID", "+16502530000"),
    ("+44 20 7031 3000", "ID", "+442070313000"),
    ("+65 6123 4567", "ID", "+6561234567"),
    ("0065 6123 4567", "ID", "+6561234567"),
    # ...and national spellings read in the tenant's own region.
    ("020 7031 3000", "GB", "+442070313000"),
    ("6123 4567", "SG", "+6561234567"),
    ("(650) 253-0000", "US", "+16502530000"),
    # Empty means "no phone", not an error.
    ("", "ID", None),
    ("   ", "ID", None),
    (None, "ID", None),
])
def test_phone_normalize(raw, region, expected):
    assert phone_normalize(raw, region) == expected


@pytest.mark.parametrize("raw", [
    "12345",                 # too short anywhere
    "0812",                  # a prefix, not a number
    "62812345678901234",     # too long for Indonesia
    "+62812345678901234",
    "+999 1234 5678",        # no such country code
    "0812-FLOWERS",          # letters are not read as a keypad
    "not a phone",
    "+",
])
def test_phone_normalize_rejects(raw):
    with pytest.raises(InvalidValue) as info:
        phone_normalize(raw, "ID")
    assert info.value.code == "invalid_phone"


@pytest.mark.parametrize("raw, expected", [
    ("budi@example.com", "budi@example.com"),
    ("  Budi.Santoso@Example.CO.ID ", "budi.santoso@example.co.id"),
    ("SITI+toko@Mail.com", "siti+toko@mail.com"),
    ("", None),
    (None, None),
])
def test_email_normalize(raw, expected):
    assert email_normalize(raw) == expected


@pytest.mark.parametrize("raw", ["budi", "budi@", "@example.com", "budi@example", "bu di@example.com", "a@b@c.com"])
def test_email_normalize_rejects(raw):
    with pytest.raises(InvalidValue) as info:
        email_normalize(raw)
    assert info.value.code == "invalid_email"


@pytest.mark.parametrize("locale, region", [
    ("id-ID", "ID"), ("en-US", "US"), ("en_GB", "GB"), ("ms-MY", "MY"),
    ("id", "ID"), ("en", "ID"), ("ms", "ID"), ("zh-Hant-TW", "TW"), ("", "ID"), (None, "ID"), ("xx-ZZ", "ID"),
])
def test_region_for_locale(locale, region):
    assert region_for_locale(locale) == region


@given(prefix=st.sampled_from(["811", "812", "813", "821", "822", "852", "857", "878", "895"]),
       rest=st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_every_spelling_of_an_indonesian_mobile_is_one_number(prefix, rest):
    expected = f"+62{prefix}{rest}"
    spellings = [f"0{prefix}{rest}", f"62{prefix}{rest}", f"+62 {prefix}-{rest[:4]}-{rest[4:]}",
                 f"0{prefix} {rest[:4]} {rest[4:]}", f"0062{prefix}{rest}", f"(0{prefix}) {rest}"]
    assert {phone_normalize(s, "ID") for s in spellings} == {expected}
