"""Commands of a fleet (many accounts on Celery workers): migrate, worker, enqueue; ``serve
--workers celery`` and ``runs --account`` build on :func:`load_fleet_option`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from connector.cli.common import (
    DEFAULT_CONFIG,
    ConfigOption,
    _load,
    _setup_logging,
    console,
    friendly_errors,
)
from connector.kernel.errors import ConfigError

FleetOption = Annotated[
    Path,
    typer.Option("--fleet", envvar="CLOSEDLOOP_FLEET", help="The fleet's config (fleet.yaml)."),
]
DEFAULT_FLEET = Path("fleet.yaml")
AccountOption = Annotated[
    str | None, typer.Option("--account", help="An account of the fleet (its folder's name).")
]


def load_fleet_option(fleet: Path, workers: bool = False) -> Any:
    """The fleet's config; ``workers``: the commands that talk to the broker need the extra."""
    from connector.fleet.accounts import load_fleet

    if workers:
        try:
            import celery  # noqa: F401
            import redis  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                f"{exc.name} is not installed: the worker commands need "
                "pip install 'closedloop[fleet]'"
            ) from None
    return load_fleet(fleet)


def migrate(
    config: ConfigOption = DEFAULT_CONFIG,
    fleet: FleetOption = DEFAULT_FLEET,
    account: AccountOption = None,
    all_accounts: Annotated[
        bool, typer.Option("--all", help="Every account of the fleet.")
    ] = False,
) -> None:
    """Bring a store to the newest schema: the config's, or the fleet's account schemas
    (--account NAME or --all), each made if it does not exist yet."""
    from connector.store import migrate as versions

    with friendly_errors():
        if account and all_accounts:
            raise ConfigError("give --account NAME or --all, not both")
        if not (account or all_accounts):
            from connector.store.database import make_engine

            make_engine(_load(config).store_url()).dispose()
            console.print(f"store at revision {versions.head()}")
            return
        from connector.fleet.schemas import migrate_accounts

        loaded = load_fleet_option(fleet)
        names: list[str] = loaded.names() if all_accounts else [str(account)]
        for name in names:
            loaded.check_name(name)
        migrate_accounts(loaded, names)
    console.print(f"{len(names)} account schemas at revision {versions.head()}")


def worker(
    fleet: FleetOption = DEFAULT_FLEET, verbose: bool = True, log_format: str = "text"
) -> None:
    """Run a Celery worker taking the fleet's account runs, one at a time, until SIGTERM (the
    run in flight finishes first). Refuses to start unless every account's schema is migrated."""
    with friendly_errors():
        loaded = load_fleet_option(fleet, workers=True)
        from connector.fleet.worker import start_worker

        _setup_logging(verbose, log_format)
        code = start_worker(loaded)
    raise typer.Exit(code)


def enqueue(
    account: Annotated[str, typer.Argument(help="The account to run (its folder's name).")],
    fleet: FleetOption = DEFAULT_FLEET,
    job: Annotated[
        str, typer.Option(help="One of the account's service.jobs; sync: every step.")
    ] = "sync",
    only: Annotated[str | None, typer.Option(help="Run one step only.")] = None,
) -> None:
    """Queue one run of ACCOUNT for the fleet's workers; prints the task id."""
    from connector.config.settings import ALL_STEPS

    with friendly_errors():
        if only is not None and only not in ALL_STEPS:
            raise ConfigError(f"--only {only!r}: expected one of {', '.join(ALL_STEPS)}")
        loaded = load_fleet_option(fleet, workers=True)
        from connector.fleet.tasks import enqueue as send

        task_id = send(loaded, account, job, only)
    console.print(f"queued {account} ({only or job}): task {task_id}")
