"""``python -m connector.cli``: the same as the ``closedloop`` command."""

from connector.cli import app

app()
