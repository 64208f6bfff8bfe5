"""The config an application's task runs on: one ConfigMap at one revision, with parsed views.

Built by the runners from a :class:`hotconf_wire.protocol.ConfigSnapshot`; application code reads
``config.revision``, ``config.data`` (key to text) and ``config.binary_data`` (key to bytes), and
asks for a key parsed by its file extension with ``config.parsed(key)`` or the explicit
``config.yaml(key)``, ``config.json(key)``, ``config.toml(key)`` and ``config.text(key)``.
Parsing is lazy and cached; a key that does not parse raises :class:`ConfigParseError` naming
the key and line, which a ``validate`` hook turns into a NACK.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

from hotconf._errors import ConfigParseError
from hotconf_wire.protocol import ConfigMapRef, ConfigSnapshot

__all__ = ["Config", "parse_key"]

_YAML = (".yaml", ".yml")
_JSON = (".json",)
_TOML = (".toml",)


@functools.cache
def _yaml() -> tuple[ModuleType, Any]:
    """PyYAML and its fastest safe loader, imported on the first YAML key: the sidecar imports
    this package for the relay and never parses YAML (PyYAML costs it 1.5 MB of memory).

    libyaml's parser (PyYAML's wheels include it) is 4-5x faster than the pure-Python one. Its
    errors read differently and mark an unexpected end of input one line further, so a text it
    refuses is parsed again by the pure-Python loader, whose message and line the NACK carries.
    """
    import yaml

    return yaml, (yaml.CSafeLoader if yaml.__with_libyaml__ else None)


def _parse_yaml(key: str, text: str) -> Any:
    yaml, fast_loader = _yaml()
    if fast_loader is not None:
        try:
            return yaml.load(text, Loader=fast_loader)
        except yaml.YAMLError:
            pass  # rare; the pure-Python loader below names the problem
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise ConfigParseError(f"invalid YAML: {exc.problem}", source=key, line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigParseError(f"invalid YAML: {exc}", source=key) from exc


def _parse_json(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigParseError(f"invalid JSON: {exc.msg}", source=key, line=exc.lineno) from exc


def _parse_toml(key: str, text: str) -> Any:
    import tomllib  # on the first TOML key, like PyYAML above

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib reports "... (at line N, column M)" in its message only.
        message = str(exc)
        line = None
        if "(at line " in message:
            try:
                line = int(message.rsplit("(at line ", 1)[1].split(",", 1)[0])
            except ValueError:
                line = None
        raise ConfigParseError(f"invalid TOML: {message}", source=key, line=line) from exc


def parse_key(key: str, text: str) -> Any:
    """Parse ``text`` by the extension of ``key``: YAML, JSON, TOML; anything else stays text."""
    lowered = key.lower()
    if lowered.endswith(_YAML):
        return _parse_yaml(key, text)
    if lowered.endswith(_JSON):
        return _parse_json(key, text)
    if lowered.endswith(_TOML):
        return _parse_toml(key, text)
    return text


@dataclass(frozen=True, eq=False)
class Config:
    """One ConfigMap at one revision, as the task sees it. Immutable."""

    namespace: str
    name: str
    revision: str
    data: Mapping[str, str]
    binary_data: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_snapshot(cls, snapshot: ConfigSnapshot) -> Config:
        return cls(
            namespace=snapshot.namespace,
            name=snapshot.name,
            revision=snapshot.revision,
            data=MappingProxyType(dict(snapshot.data)),
            binary_data=MappingProxyType(dict(snapshot.binary_data)),
        )

    @property
    def ref(self) -> ConfigMapRef:
        return ConfigMapRef(self.namespace, self.name)

    def _require(self, key: str) -> str:
        try:
            return self.data[key]
        except KeyError:
            raise KeyError(
                f"ConfigMap {self.ref} at {self.revision} has no data key {key!r}; "
                f"keys: {sorted(self.data)}"
            ) from None

    def parsed(self, key: str) -> Any:
        """``data[key]`` parsed by its extension (``.yaml``/``.yml``, ``.json``, ``.toml``)."""
        if key not in self._cache:
            self._cache[key] = parse_key(key, self._require(key))
        return self._cache[key]

    def parse_all(self) -> dict[str, Any]:
        """Every data key parsed; raises on the first key that does not parse."""
        return {key: self.parsed(key) for key in self.data}

    def yaml(self, key: str) -> Any:
        """``data[key]`` parsed as YAML whatever its extension."""
        return _parse_yaml(key, self._require(key))

    def json(self, key: str) -> Any:
        """``data[key]`` parsed as JSON whatever its extension."""
        return _parse_json(key, self._require(key))

    def toml(self, key: str) -> dict[str, Any]:
        """``data[key]`` parsed as TOML whatever its extension."""
        result: dict[str, Any] = _parse_toml(key, self._require(key))
        return result

    def text(self, key: str) -> str:
        """``data[key]`` as text, unparsed."""
        return self._require(key)

    def __getitem__(self, key: str) -> Any:
        return self.parsed(key)

    def __repr__(self) -> str:
        # Never print values: configs may hold things an operator does not want in logs.
        return (
            f"Config({self.namespace}/{self.name} {self.revision[:19]}, "
            f"keys={sorted([*self.data, *self.binary_data])})"
        )
