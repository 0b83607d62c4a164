"""Loading the admin's configuration: YAML with line marks, ``${ENV}`` secrets, validation of
every section (adapter settings by the adapter's own ``Settings`` model), file:line errors.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError, create_model

from connector import systems
from connector.config.settings import Config, CrmConfig, SourceConfig
from connector.config.yamlfile import Loc, YamlDocument, load_yaml
from connector.kernel import redact
from connector.kernel.errors import ConfigError

Missing = tuple[Loc, str]  # where a ${NAME} is not set, and the message saying so
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_WORDS = ("token", "secret", "password", "key")


class LoadedConfig:
    """A validated config with its adapters' settings and the folder paths resolve against."""

    def __init__(
        self,
        path: Path,
        config: Config,
        crm_settings: Any,
        sources: dict[str, Any],
        secrets: set[str] | None = None,
    ):
        self.path = path
        self.config = config
        self.crm_settings = crm_settings
        self.source_settings = sources
        self.secrets = secrets or set()  # every interpolated value: redacted from logs
        self.missing_secrets: list[Missing] = []  # only with load_config(allow_missing_...)

    def resolve(self, relative: Path) -> Path:
        return relative if relative.is_absolute() else (self.path.parent / relative).resolve()

    def store_url(self) -> str:
        """The store URL; a relative SQLite path is taken from the config file's folder."""
        url = self.config.store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            return prefix + str(self.resolve(Path(url[len(prefix) :])))
        return url


def _is_secret(loc: Loc) -> bool:
    return any(word in str(part).lower() for part in loc for word in _SECRET_WORDS)


def format_validation(doc: YamlDocument, error: ValidationError, prefix: Loc = ()) -> str:
    """One line per problem: ``file:line: field: what was expected``."""
    problems = []
    for item in error.errors():
        loc = (*prefix, *item["loc"])
        got = "" if _is_secret(loc) else f" (got {item['input']!r})"
        if item["type"] in {"missing", "extra_forbidden"}:
            got = ""
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{doc.where(loc)}: {message}{got}")
    return "\n".join(problems)


def validate(doc: YamlDocument, model: type[Any], data: Any, loc: Loc = ()) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation(doc, exc, loc)) from None


def _secrets(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    warn_if_readable_by_others(path)
    data = load_yaml(path).data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of NAME: value")
    # `echo TOKEN > file` and YAML block scalars leave a newline no API accepts (and which an
    # HTTP client would quote, token and all, in its error)
    return {str(k): str(v).strip() for k, v in data.items()}


def _interpolate(
    doc: YamlDocument, value: Any, loc: Loc, secrets: dict[str, str], missing: list[Missing]
) -> Any:
    """``value`` with every ``${NAME}`` replaced; a name that is not set is added to
    ``missing`` (file, line, name) and left as it is, so the rest is still checked."""
    if isinstance(value, dict):
        return {k: _interpolate(doc, v, (*loc, k), secrets, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(doc, v, (*loc, i), secrets, missing) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        found = _secret_value(name, secrets)
        if found is None:
            missing.append(
                (
                    loc,
                    f"{doc.where(loc)}: secret ${{{name}}} is not set: export {name}=... "
                    "or add it to the secrets_file",
                )
            )
            return match.group(0)  # kept as written: never sent, never read as a path
        if any(ord(c) < 32 or ord(c) == 127 for c in found):
            raise ConfigError(  # no HTTP header or URL can carry it; the value is not shown
                f"{doc.where(loc)}: secret ${{{name}}} contains a line break or another control "
                "character inside it; expected a single-line value"
            )
        return found

    return _ENV.sub(substitute, value)


def _secret_value(name: str, secrets: dict[str, str]) -> str | None:
    """``${NAME}``: the environment first, then the secrets file; surrounding whitespace off."""
    found = os.environ.get(name, secrets.get(name))
    return None if found is None else found.strip()


def warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        logging.getLogger(__name__).warning(
            "%s is readable by other users; run: chmod 600 %s", path, path
        )


def interpolated_yaml(path: Path) -> tuple[YamlDocument, Any]:
    """A YAML mapping with every ``${NAME}`` replaced from the environment (each value
    registered for redaction); every name that is not set is an error (file:line)."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    missing: list[Missing] = []
    data = _interpolate(doc, doc.data, (), {}, missing)
    redact.register(_found_values(doc.data, {}))
    if missing:
        raise ConfigError("\n".join(message for _, message in missing))
    return doc, data


def load_config(
    path: Path, allow_missing_secrets: bool = False, section: tuple[str, int] | None = None
) -> LoadedConfig:
    """Read, interpolate and validate ``path`` and its adapters' settings.

    ``section`` (``("accounts", 3)``): the config is that entry of a list in the file (less its
    ``name``), its errors still naming the file's lines.

    Raises one ConfigError listing every problem found: each missing secret, each invalid
    key of the config and of every adapter's settings. ``allow_missing_secrets`` (doctor)
    returns the config anyway, with the missing ones in ``missing_secrets``."""
    doc = load_yaml(path)
    at: Loc = section or ()
    raw = doc.data[at[0]][at[1]] if section else doc.data
    if not isinstance(raw, dict):
        raise ConfigError(f"{doc.where(at) if section else path}: expected a mapping")
    raw = {k: v for k, v in raw.items() if not (section and k == "name")}
    raw_secrets = raw.get("secrets_file")
    secrets_path = (path.parent / raw_secrets) if raw_secrets else None
    secrets = _secrets(secrets_path)
    missing: list[Missing] = []
    data = _interpolate(doc, raw, at, secrets, missing)
    interpolated = _found_values(raw, secrets)
    redact.register(interpolated)  # before validation: its errors may quote a value
    problems = [] if allow_missing_secrets else [message for _, message in missing]
    try:
        config: Config = validate(doc, Config, data, at)
    except ConfigError as exc:
        raise ConfigError("\n".join([*problems, str(exc)])) from None
    crm_settings: Any = None
    if config.crm.kind not in systems.crm_kinds():
        known = ", ".join(systems.crm_kinds())
        problems.append(
            f"{doc.where((*at, 'crm', 'kind'))}: unknown CRM {config.crm.kind!r} "
            f"(expected one of {known})"
        )
    else:
        model = systems.crm_class(config.crm.kind).Settings
        crm_settings = _collect(problems, doc, model, config.crm.settings, (*at, "crm", "settings"))
    sources: dict[str, Any] = {}
    for i, source in enumerate(config.sources):
        if source.kind not in systems.source_kinds():
            known = ", ".join(systems.source_kinds())
            problems.append(
                f"{doc.where((*at, 'sources', i, 'kind'))}: unknown source {source.kind!r} "
                f"(expected one of {known})"
            )
            continue
        if source.name in sources:
            problems.append(
                f"{doc.where((*at, 'sources', i, 'name'))}: duplicate source name {source.name!r}"
            )
            continue
        model = systems.source_class(source.kind).Settings
        settings = _collect(problems, doc, model, source.settings, (*at, "sources", i, "settings"))
        if settings is not None:
            sources[source.name] = _relative_to(path.parent, settings)
    if problems:
        raise ConfigError("\n".join(problems))
    inline = [
        value.get_secret_value()
        for model in (crm_settings, *sources.values())
        for _, value in model
        if isinstance(value, SecretStr)
        and value.get_secret_value() not in interpolated
        and not _ENV.fullmatch(value.get_secret_value())  # a missing one, left as written
    ]
    if inline:
        warn_if_readable_by_others(path)  # secrets written in the file itself
    redact.register(inline)
    loaded = LoadedConfig(
        path.resolve(),
        config,
        _relative_to(path.parent, crm_settings),
        sources,
        interpolated | set(inline),
    )
    loaded.missing_secrets = missing
    return loaded


def _collect(problems: list[str], doc: YamlDocument, model: Any, data: Any, loc: Loc) -> Any:
    """``validate``, adding its problems to ``problems`` (and returning None) instead of
    raising, so one run of the loader reports every section."""
    try:
        return validate(doc, model, data, loc)
    except ConfigError as exc:
        problems.append(str(exc))
        return None


def _found_values(data: Any, secrets: dict[str, str]) -> set[str]:
    """The values ``${NAME}`` placeholders in ``data`` stand for."""
    text = json.dumps(data, default=str)
    names = set(_ENV.findall(text))
    return {v for n in names if (v := _secret_value(n, secrets))}


def _relative_to(folder: Path, settings: BaseModel) -> BaseModel:
    """File paths in adapter settings are relative to the config file, not the working dir;
    a key file others can read gets a warning."""
    fixed = {
        name: (folder / value).resolve()
        for name, value in settings
        if isinstance(value, Path) and not value.is_absolute()
    }
    settings = settings.model_copy(update=fixed) if fixed else settings
    for name, value in settings:
        if isinstance(value, Path) and any(
            word in name for word in _SECRET_WORDS + ("credential",)
        ):
            warn_if_readable_by_others(value)
    return settings


def typed_config_model() -> type[BaseModel]:
    """:class:`Config` with ``crm`` and each of ``sources`` typed by ``kind``: a discriminated
    union of every registered adapter's own ``Settings``, so the JSON Schema lets an editor
    flag a misspelled or mistyped setting (the loader checks the same models)."""

    def entry(base: type[BaseModel], kind: str, settings: type[BaseModel]) -> Any:
        name = "".join(part.title() for part in kind.split("_")) + base.__name__
        fields: dict[str, Any] = {
            "kind": (Literal[kind], Field(description=f"The {kind} adapter.")),
            "settings": (settings, ...),
        }
        return create_model(name, __base__=base, **fields)

    def union(base: type[BaseModel], kinds: list[str], find: Any) -> Any:
        members = tuple(entry(base, kind, find(kind).Settings) for kind in kinds)
        return Annotated[Union[members], Field(discriminator="kind")]  # noqa: UP007

    crm = union(CrmConfig, systems.crm_kinds(), systems.crm_class)
    source = union(SourceConfig, systems.source_kinds(), systems.source_class)
    fields: dict[str, Any] = {
        "crm": (crm, ...),
        "sources": (list[source], Field(default_factory=list)),  # type: ignore[valid-type]
    }
    model: type[BaseModel] = create_model("Config", __base__=Config, **fields)
    return model


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)
