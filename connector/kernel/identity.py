"""Identity keys: the one normalisation of emails and ids, so every path hashes alike.

Raw emails never reach the store: an email becomes ``sha256(normalise_email(email))``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata


def normalise_email(email: str) -> str:
    """Trim, NFKC-normalise, lowercase: ``" Ana@Example.COM "`` -> ``ana@example.com``."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def email_hash(email: str) -> str:
    """The identity value stored for an email: hex SHA-256 of the normalised address."""
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()


def normalise_id(value: str | None) -> str:
    """Click ids and client ids: trimmed; empty and GA's ``(not set)`` mean no id."""
    text = (value or "").strip()
    return "" if text.lower() in {"(not set)", "null", "none"} else text


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of ``text`` (UTF-8): the form every ad platform takes hashed identifiers in."""
    return hashlib.sha256(text.encode()).hexdigest()


# Longest and shortest international numbers (ITU-T E.164: at most 15 digits with the country
# code; the shortest real ones have 8).
_E164_DIGITS = (8, 15)


def normalise_phone(raw: str | None, default_calling_code: str | None = None) -> str:
    """A phone number as E.164 digits without ``+`` (``"(650) 555-1212"`` with default calling
    code ``"1"`` -> ``"16505551212"``), or ``""`` when it cannot be made international.

    A number written with ``+`` or ``00`` carries its country code; any other gets
    ``default_calling_code`` after its national trunk ``0`` is dropped. Extensions (``x12``,
    ``ext. 12``) and punctuation are ignored.
    """
    text = re.split(r"[A-Za-z]", (raw or "").strip(), maxsplit=1)[0]
    digits = re.sub(r"\D", "", text)
    if not digits:
        return ""
    if text.lstrip().startswith("+"):
        international = digits
    elif digits.startswith("00"):
        international = digits[2:]
    elif default_calling_code:
        international = default_calling_code + digits.lstrip("0")
    else:
        return ""
    shortest, longest = _E164_DIGITS
    if international.startswith("0") or not shortest <= len(international) <= longest:
        return ""
    return international
