"""The repository keeps its promises to a newcomer: the README's two commands (the second is
what CI runs), every setting documented, nothing pointing outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from connector import systems
from connector.config import settings
from connector.fleet.accounts import FleetConfig

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block, "the README starts with a bash block"
    return block.group(1).strip().splitlines()


def test_the_first_command_installs_only_what_the_demo_needs() -> None:
    install_and_demo, _ = readme_commands()
    assert "pip install -e . " in install_and_demo and "[" not in install_and_demo
    assert install_and_demo.endswith("closedloop demo")


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    _, tests = readme_commands()
    assert "'.[dev]'" in tests and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert any(line == tests or line.startswith(tests + " ||") for line in ci)


def test_every_setting_of_every_settings_model_is_documented() -> None:
    models = [
        settings.StoreConfig, settings.MappingsConfig, settings.SyncConfig,
        settings.AttributionConfig, settings.CurrencyConfig, settings.ServiceConfig,
        settings.JobConfig, settings.Config, FleetConfig,
        *(systems.crm_class(kind).Settings for kind in systems.crm_kinds()),
        *(systems.source_class(kind).Settings for kind in systems.source_kinds()),
    ]  # fmt: skip
    undocumented = {
        f"{model.__name__}.{name}"
        for model in models
        for name in model.model_fields
        if not re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", README)  # `name`, `store.url`, …
    }
    assert undocumented == set()


def test_nothing_refers_to_files_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = re.compile("|".join(["/" + "work/", "shared/" + "[A-Z_]+\\.md", "[.][.]/[.][.]/"]))
    found = [
        f"{name}: {match.group(0)}"
        for name in tracked
        if (ROOT / name).is_file() and name.endswith((".py", ".md", ".toml", ".yaml", ".cfg"))
        for match in [outside.search((ROOT / name).read_text(encoding="utf-8", errors="replace"))]
        if match
    ]
    assert found == []
