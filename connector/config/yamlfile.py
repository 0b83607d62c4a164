"""Load YAML keeping the line of every key, so errors can say ``file:line: field``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from connector.kernel.errors import ConfigError

Loc = tuple[str | int, ...]


class YamlDocument:
    """Parsed YAML plus the line number of every path in it."""

    def __init__(self, path: Path, data: Any, lines: dict[Loc, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def line_of(self, loc: Loc) -> int | None:
        """Line of ``loc`` or of its nearest ancestor present in the file."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None

    def where(self, loc: Loc) -> str:
        line = self.line_of(loc)
        field = ".".join(str(p) for p in loc)
        prefix = f"{self.path}:{line}" if line else str(self.path)
        return f"{prefix}: {field}" if field else prefix


def load_yaml(path: Path) -> YamlDocument:
    """Parse ``path``; malformed YAML or duplicate keys raise ConfigError with the line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[start : exc.start].decode("utf-8")) + 1
        raise ConfigError(
            f"{path}:{line}:{column}: byte 0x{raw[exc.start]:02X} is not UTF-8 "
            "(save the file as UTF-8)"
        ) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(path, {}, {})
        data = loader.construct_document(node)
        lines: dict[Loc, int] = {}
        _index(loader, node, (), lines, path)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{at}: malformed YAML: {exc.problem}") from exc
    finally:
        loader.dispose()
    return YamlDocument(path, data, lines)


def _index(
    loader: yaml.SafeLoader, node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: Path
) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if key in seen:
                raise ConfigError(f"{path}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
            child = (*loc, key)
            lines[child] = key_node.start_mark.line + 1
            _index(loader, value_node, child, lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(loader, item, (*loc, i), lines, path)
