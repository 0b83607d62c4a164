"""Secret redaction: one process-wide list of secret values, applied to every text that leaves.

The config loader registers each secret it reads; log lines, error messages, stored run errors
and tracebacks go through :func:`redact` before they are printed or saved. A secret is also
replaced in the forms it takes on its way through HTTP clients and reprs: URL-encoded (a token
in a query string), JSON-escaped and ``repr``-escaped.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "***"
MIN_LENGTH = 4  # shorter values would blank out ordinary words

_lock = threading.Lock()
_forms: list[str] = []  # longest first, so a secret inside another is not cut in half


def forms_of(secret: str) -> set[str]:
    """The spellings of ``secret`` an error text or a log line may contain."""
    found = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    found |= {json.dumps(secret)[1:-1], repr(secret)[1:-1]}
    return {f for f in found if len(f) >= MIN_LENGTH}


def register(secrets: Iterable[str]) -> None:
    """Add secret values (surrounding whitespace ignored: the values sent are stripped)."""
    global _forms
    new = set()
    for secret in secrets:
        for value in {secret, secret.strip()}:
            if len(value.strip()) >= MIN_LENGTH:
                new |= forms_of(value)
    with _lock:
        _forms = sorted(set(_forms) | new, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    for form in _forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def registered() -> list[str]:
    """The registered spellings (for tests)."""
    return list(_forms)
