"""Identity keys: the one normalisation of emails and ids, so every path hashes alike.

Raw emails never reach the store: an email becomes ``sha256(normalise_email(email))``.
"""

from __future__ import annotations

import hashlib
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
