"""YAML loading that remembers where every key and item came from.

Config errors must name the file and the line, so the loader builds plain
dicts and lists that also carry the line of each key (``Located*.lines``).
Duplicate keys, which YAML would silently collapse, are remembered too.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["LocatedDict", "LocatedList", "YamlError", "load"]


class LocatedDict(dict[Any, Any]):
    """A mapping that knows its own line and the line of each key."""

    line: int
    lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]


class LocatedList(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    line: int
    lines: list[int]


class YamlError(Exception):
    """A file that is not valid YAML; ``line`` is 1-based, 0 when unknown."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's parser where PyYAML was built with it (its wheels are): the same documents, read ten
times faster, which 200 rules and a daemon's start-up notice."""


class _Loader(_SafeLoader):  # type: ignore[misc]
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    result.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            result.duplicates.append((key, line))
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(item, deep=True) for item in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [item.start_mark.line + 1 for item in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load(text: str) -> Any:
    """Parse one YAML document; raise ``YamlError`` with the line of the fault."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        return _raise(f"not valid YAML: {exc.problem or exc.context}", line)
    except yaml.YAMLError as exc:
        return _raise(f"not valid YAML: {exc}", 0)


def _raise(message: str, line: int) -> Any:
    raise YamlError(message, line)
