"""Everything one run needs, built once from the config: store, adapters, mappings."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlmodel import Session

from connector import systems
from connector.config.campaigns import CampaignJoin, load_campaign_rules
from connector.config.channels import ChannelClassifier
from connector.config.conversions import LoadedConversions, load_conversions, resolve_sources
from connector.config.loader import LoadedConfig
from connector.config.mappings import CrmMapping, load_channel_rules, load_crm_mapping
from connector.kernel.errors import Interrupted
from connector.run.progress import NullProgress, Progress
from connector.store import models
from connector.store.database import make_engine
from connector.store.lock import Lease


@dataclass
class RunContext:
    loaded: LoadedConfig
    # The store; during a dry run, the one connection whose transaction is rolled back at the
    # end (sessions take either).
    engine: Engine | Connection
    crm: Any
    sources: dict[str, Any]
    mapping: CrmMapping
    classifier: ChannelClassifier
    campaigns: CampaignJoin
    progress: Progress = field(default_factory=NullProgress)
    run_id: int | None = None
    dry_run: bool = False
    counts: dict[str, Any] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    write_plan: Any = None  # the last write-back plan (what --dry-run prints)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (source, row: why)
    conversions: LoadedConversions | None = None  # mappings.conversions, when configured
    conversion_sources: list[str] = field(default_factory=list)  # the source of each entry
    conversion_run: Any = None  # the last conversions plan (what --dry-run prints)
    _sinks: dict[str, Any] | None = field(default=None, repr=False)
    lease: Lease | None = None  # the store lock the run holds
    touch_plan: Any = None  # the touchpoint records' part of it (run.touch_records)

    @property
    def crm_kind(self) -> str:
        return self.loaded.config.crm.kind

    def checkpoint(self) -> None:
        """Called between batches: honour a requested stop once the batch in flight is saved."""
        if self.stop.is_set():
            raise Interrupted("stopped on request after the batch in flight was saved")
        if self.lease is not None and self.lease.lost.is_set():
            raise Interrupted(
                "another process took the store lock over (this one did not renew it in time); "
                "stopped after the batch in flight was saved"
            )

    def sinks(self) -> dict[str, Any]:
        """Per platform, a source adapter the conversions go through (for hashing)."""
        if self._sinks is None:
            kinds = {s.name: s.kind for s in self.loaded.config.sources}
            self._sinks = {}
            for name in self.conversion_sources:
                self._sinks.setdefault(kinds[name], self.sources[name])
        return self._sinks

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def api_calls(self) -> int:
        adapters_ = [self.crm, *self.sources.values()]
        return sum(int(a.api_calls()) for a in adapters_)

    def close(self) -> None:
        """Close the adapters' HTTP sessions and the store's connections."""
        for adapter in [self.crm, *self.sources.values()]:
            adapter.close()
        if isinstance(self.engine, Engine):
            self.engine.dispose()

    def save_counts(self, session: Session) -> None:
        if self.run_id is not None:
            run = session.get(models.SyncRun, self.run_id)
            if run:
                run.counts = json.dumps(self.counts, sort_keys=True)
                run.api_calls = self.api_calls()
                session.add(run)


def build_context(
    loaded: LoadedConfig,
    progress: Progress | None = None,
    create_store: bool = True,
    must_exist: bool | None = None,
) -> RunContext:
    """Load the mappings (validated before anything runs) and construct the adapters.

    ``create_store=False`` never makes a store: one that does not exist is an error (commands
    that act on past runs), or left alone with ``must_exist=False`` (a dry run)."""
    cfg = loaded.config
    mapping = load_crm_mapping(loaded.resolve(cfg.mappings.crm))
    rules = load_channel_rules(loaded.resolve(cfg.mappings.channels))
    campaigns_path = loaded.resolve(cfg.mappings.campaigns) if cfg.mappings.campaigns else None
    conversions = None
    conversion_sources: list[str] = []
    if cfg.mappings.conversions:
        conversions = load_conversions(loaded.resolve(cfg.mappings.conversions))
        conversion_sources = resolve_sources(conversions, cfg)
    crm = systems.crm_class(cfg.crm.kind)(loaded.crm_settings)
    sources = {
        s.name: systems.source_class(s.kind)(loaded.source_settings[s.name]) for s in cfg.sources
    }
    return RunContext(
        loaded=loaded,
        engine=make_engine(loaded.store_url(), create_store, must_exist),
        crm=crm,
        sources=sources,
        mapping=mapping,
        classifier=ChannelClassifier(rules),
        campaigns=CampaignJoin(load_campaign_rules(campaigns_path)),
        progress=progress or NullProgress(),
        conversions=conversions,
        conversion_sources=conversion_sources,
    )
