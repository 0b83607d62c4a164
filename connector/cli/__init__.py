"""The ``closedloop`` command (Typer + Rich): a thin face over the run, report, service and demo.

Each module holds a few commands as plain functions; they are registered here, in the order
``closedloop --help`` lists them.
"""

from __future__ import annotations

from connector.cli.common import app
from connector.cli.fleet import enqueue, migrate, worker
from connector.cli.report import paths, report
from connector.cli.run import forget, rollback, serve, sync
from connector.cli.runs import runs_app
from connector.cli.setup import demo, doctor, init, schema

for command in (
    sync, report, demo, init, doctor, schema, paths, serve, rollback, forget,
    migrate, worker, enqueue,
):  # fmt: skip
    app.command()(command)
app.add_typer(runs_app, name="runs")

__all__ = ["app"]
