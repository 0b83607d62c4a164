"""Log lines: JSON for shippers, and secrets replaced before anything is written."""

from __future__ import annotations

import io
import json
import logging

from connector.kernel import redact
from connector.service.logs import JsonFormatter, RedactSecrets


def test_secret_values_are_redacted_from_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets(["pat-na1-secret-123", "abc"]))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling %s?token=%s", "https://x", "pat-na1-secret-123")
        try:
            raise RuntimeError("401 for token pat-na1-secret-123")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "calling https://x?token=***"
    assert lines[0]["level"] == "warning" and lines[0]["logger"] == "test.redact"
    assert "pat-na1-secret-123" not in stream.getvalue()
    assert "RuntimeError: 401 for token ***" in lines[1]["message"]
    RedactSecrets(["abc"])
    assert "abc" not in redact.registered()  # too short to redact without harm
