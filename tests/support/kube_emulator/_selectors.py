"""Label and field selectors of list and watch requests (``labelSelector``, ``fieldSelector``).

Called by the object store when it lists, watches or deletes a collection. Label selectors
support ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists) and
``!k`` (does not exist); field selectors support ``path=v``, ``path==v`` and ``path!=v`` for
any dotted path into the object (``metadata.name``, ``metadata.namespace``, ``status.phase``,
``spec.nodeName`` ...), a missing field comparing equal to the empty string, as in Kubernetes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import BadRequest

_SET_TERM = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` of set-based terms."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [term for term in terms if term.strip()]


@dataclass(frozen=True, kw_only=True)
class LabelSelector:
    """A parsed ``labelSelector``; every term must hold for a match."""

    terms: tuple[Callable[[Mapping[str, str]], bool], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        checks: list[Callable[[Mapping[str, str]], bool]] = []
        for term in _split_terms(text or ""):
            checks.append(_parse_label_term(term))
        return cls(terms=tuple(checks))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in self.terms)


def _parse_label_term(term: str) -> Callable[[Mapping[str, str]], bool]:
    if match := _SET_TERM.match(term):
        key, operator, raw_values = match.groups()
        values = frozenset(value.strip() for value in raw_values.split(","))
        if operator == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: key not in labels or labels[key] not in values
    if match := _EQ_TERM.match(term):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    if match := _EXISTS_TERM.match(term):
        negated, key = match.groups()
        if negated:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise BadRequest(f"unable to parse requirement: {term!r} in labelSelector")


@dataclass(frozen=True, kw_only=True)
class FieldSelector:
    """A parsed ``fieldSelector``: ``(path, equal?, value)`` terms, all must hold."""

    terms: tuple[tuple[tuple[str, ...], bool, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        terms: list[tuple[tuple[str, ...], bool, str]] = []
        for term in _split_terms(text or ""):
            match = _EQ_TERM.match(term)
            if match is None:
                raise BadRequest(f"invalid field selector: {term!r}; use path=value or path!=value")
            path, operator, value = match.groups()
            terms.append((tuple(path.split(".")), operator != "!=", value))
        return cls(terms=tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_field(obj, path) == value) == equal for path, equal, value in self.terms)


def _field(obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    value: Any = obj
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return ""
        value = value[part]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, kw_only=True)
class Selector:
    """Both selectors of one request together."""

    labels: LabelSelector
    fields: FieldSelector

    @classmethod
    def parse(cls, *, labels: str | None, fields: str | None) -> Selector:
        return cls(labels=LabelSelector.parse(labels), fields=FieldSelector.parse(fields))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return self.labels.matches(obj) and self.fields.matches(obj)
