"""Secret redaction: every spelling a secret takes on its way through clients and reprs."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

from connector.kernel import redact


def test_a_secret_is_replaced_in_every_spelling_and_with_the_whitespace_it_came_with() -> None:
    secret = "EAAB/te st+key=="
    redact.register([f"  {secret}\n"])
    texts = [
        f"Invalid header value b'Bearer {secret}\\n'",  # the repr of what was sent
        f"GET /v21.0/insights?access_token={quote(secret, safe='')}&limit=25",
        f"GET /insights?access_token={quote_plus(secret)}",
        f"body: {json.dumps({'token': secret})}",
        f"token {secret!r} refused",
    ]
    for text in texts:
        cleaned = redact.redact(text)
        assert "***" in cleaned, text
        for spelling in (secret, quote(secret, safe=""), quote_plus(secret), "te st"):
            assert spelling not in cleaned, (text, cleaned)


def test_short_values_are_not_redacted_and_other_text_is_kept() -> None:
    redact.register(["abc", "   "])
    assert redact.redact("abc is not a secret") == "abc is not a secret"
    assert "abc" not in redact.registered()
