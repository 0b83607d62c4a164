"""The one normalisation of identifiers: phones into E.164 digits, hashes in hex."""

from __future__ import annotations

import hashlib

import pytest

from connector.kernel.identity import email_hash, normalise_phone, sha256_hex


@pytest.mark.parametrize(
    ("raw", "calling_code", "expected"),
    [
        ("+1 (650) 555-1212", None, "16505551212"),  # international form: the code is in it
        ("(650) 555-1212", "1", "16505551212"),  # national form: the default code is added
        ("0176 54648789", "49", "4917654648789"),  # the national trunk 0 is dropped
        ("0049 176 54648789", None, "4917654648789"),  # 00 is the international prefix
        ("+44 20 7031 3000 ext. 12", None, "442070313000"),  # extensions are not the number
        ("(650) 555-1212", None, ""),  # national form without a default: cannot be made E.164
        ("+1 555", None, ""),  # too short to be a phone number
        ("+1 2345 6789 0123 4567", None, ""),  # more than E.164's 15 digits
        ("", "1", ""),
        (None, "1", ""),
    ],
)
def test_phones_become_e164_digits_or_nothing(
    raw: str | None, calling_code: str | None, expected: str
) -> None:
    assert normalise_phone(raw, calling_code) == expected


def test_hashes_are_lower_case_hex_sha256_of_the_normalised_value() -> None:
    assert sha256_hex("16505551212") == hashlib.sha256(b"16505551212").hexdigest()
    # Meta's documented example: John_Smith@gmail.com -> john_smith@gmail.com
    assert email_hash("  John_Smith@gmail.com ") == (
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    )
