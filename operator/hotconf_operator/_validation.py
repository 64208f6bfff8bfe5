"""Validation of a ConfigMap before any of it reaches a pod.

Called by ``_rollout`` for every new revision. Each data key is parsed by its extension through
the public :class:`hotconf.Config` (``.yaml``/``.yml``, ``.json``, ``.toml``; other keys are
text), exactly as applications parse it. A key may carry a JSON Schema, referenced by the
ConfigMap annotation ``hotconf.dev/schema.<key>``, in one of two forms:

* inline: the annotation's value is the schema itself, a JSON object (starts with ``{``);
* ``<configmap>/<key>``: the schema is key ``<key>`` of ConfigMap ``<configmap>`` in the same
  namespace (parsed by the key's extension, so a schema may be YAML or JSON).

All problems are collected (one per key) and raised together as :class:`ConfigInvalid`; each
names the key, the line when the parser knows it, and the message. A message never carries a
config value: it goes to a Warning Event, the status annotation and the operator's log, which
people without access to the data read. A schema violation names the key, the path in it, the
rule (the schema keyword) and what the rule expects (:func:`describe_violation`), never the
offending value, which jsonschema's own messages quote (``'<value>' is not of type 'integer'``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from hotconf import Config, ConfigParseError
from hotconf_operator._errors import ConfigInvalid, KubeApiError, Problem

__all__ = ["SCHEMA_ANNOTATION_PREFIX", "SchemaFetcher", "describe_violation", "validate_configmap"]

SCHEMA_ANNOTATION_PREFIX = "hotconf.dev/schema."

#: Reads key ``key`` of ConfigMap ``namespace/name`` (raises KubeApiError / KeyError).
SchemaFetcher = Callable[[str, str, str], Awaitable[str]]


async def _load_schema(
    reference: str, *, key: str, namespace: str, fetch: SchemaFetcher | None
) -> Any:
    reference = reference.strip()
    if reference.startswith("{"):
        try:
            return json.loads(reference)
        except json.JSONDecodeError as exc:
            raise ConfigInvalid(
                [Problem(key, f"inline schema in {SCHEMA_ANNOTATION_PREFIX}{key}: {exc}")]
            ) from exc
    if reference.count("/") != 1 or fetch is None:
        raise ConfigInvalid(
            [
                Problem(
                    key,
                    f"annotation {SCHEMA_ANNOTATION_PREFIX}{key} must be an inline JSON schema "
                    "or CONFIGMAP/KEY of a ConfigMap in the same namespace",
                )
            ]
        )
    cm_name, schema_key = reference.split("/", 1)
    annotation = f"{SCHEMA_ANNOTATION_PREFIX}{key}: {reference}"
    try:
        text = await fetch(namespace, cm_name, schema_key)
    except KeyError as exc:
        raise ConfigInvalid(
            [Problem(key, f"schema ConfigMap {namespace}/{cm_name} has no key {schema_key} "
                          f"({annotation})")]
        ) from exc  # fmt: skip
    except KubeApiError as exc:
        why = "does not exist" if exc.status == 404 else f"cannot be read: {exc}"
        raise ConfigInvalid(
            [Problem(key, f"schema ConfigMap {namespace}/{cm_name} {why} ({annotation})")]
        ) from exc
    try:
        holder = Config(namespace=namespace, name=cm_name, revision="", data={schema_key: text})
        return holder.parsed(schema_key)
    except ConfigParseError as exc:
        raise ConfigInvalid(
            [Problem(key, f"schema {namespace}/{reference} does not parse: {exc}")]
        ) from exc


#: A quoted snippet in a parser's message (PyYAML quotes alias names and characters of the
#: text: ``found undefined alias '<name>'``); its own placeholders (``'<stream end>'``) stay.
_QUOTED = re.compile(r"'(?!<[a-z ]+>')[^']*'")


def _parse_reason(reason: str) -> str:
    """The parser's reason with any quoted piece of the text withheld."""
    return _QUOTED.sub("(text withheld)", reason)


def _listed(values: Any, *, limit: int = 5) -> str:
    """Schema-given values (never config values), shown as the schema writes them."""
    items = list(values) if isinstance(values, list | tuple) else [values]
    shown = ", ".join(json.dumps(v) for v in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


def _names(names: Any) -> str:
    return ", ".join(repr(str(n)) for n in sorted(names, key=str)[:10])


def describe_violation(error: jsonschema.exceptions.ValidationError) -> str:
    """What the broken rule expects, from the schema's side only: the rule (``error.validator``,
    a JSON Schema keyword) and its argument (``error.validator_value``, written in the schema),
    plus property names where the rule is about names. Never the instance (the config value)."""
    rule = str(error.validator)
    expected = error.validator_value
    instance = error.instance
    said: str
    if rule == "type":
        said = f"expected type {_listed(expected)}"
    elif rule == "enum":
        said = f"expected one of {_listed(expected)}"
    elif rule == "const":
        said = f"expected the constant {_listed(expected, limit=1)}"
    elif rule == "required":
        present = instance if isinstance(instance, dict) else {}
        said = f"missing required property {_names(n for n in expected if n not in present)}"
    elif rule == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        extra = set(instance) - set(schema.get("properties") or {})
        said = "properties not allowed"
        if extra and not schema.get("patternProperties"):
            said += f": {_names(extra)}"
    elif rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        words = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
                 "exclusiveMaximum": "<", "multipleOf": "a multiple of"}  # fmt: skip
        said = f"expected a number {words[rule]} {_listed(expected, limit=1)}"
    elif rule in ("minLength", "maxLength"):
        said = f"expected a string of {'at least' if rule == 'minLength' else 'at most'} "
        said += f"{expected} characters"
    elif rule in ("minItems", "maxItems", "minProperties", "maxProperties"):
        what = "items" if "Items" in rule else "properties"
        said = f"expected {'at least' if rule.startswith('min') else 'at most'} {expected} {what}"
    elif rule == "uniqueItems":
        said = "expected unique items"
    elif rule == "pattern":
        said = f"expected a string matching {_listed(expected, limit=1)}"
    elif rule == "format":
        said = f"expected format {_listed(expected, limit=1)}"
    elif rule in ("anyOf", "oneOf"):
        said = f"expected to match {'one' if rule == 'oneOf' else 'at least one'} of its "
        said += f"{len(expected) if isinstance(expected, list) else ''} alternatives"
        said = said.replace("  ", " ")
    elif rule == "not":
        said = "expected not to match the schema under 'not'"
    else:
        said = "does not satisfy it"
    return f'rule "{rule}": {said}'


def _schema_problem(key: str, schema: Any, value: Any) -> Problem | None:
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        return Problem(key, f"the schema itself is invalid: {exc.message}")
    errors = sorted(cls(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    first = errors[0]
    path = "/".join(str(p) for p in first.absolute_path) or "(root)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Problem(key, f"schema violation at {path}: {describe_violation(first)}{more}")


async def validate_configmap(
    *,
    namespace: str,
    name: str,
    data: Mapping[str, str],
    annotations: Mapping[str, str],
    fetch_schema: SchemaFetcher | None = None,
) -> None:
    """Raise :class:`ConfigInvalid` listing every problem; return if the ConfigMap is valid."""
    config = Config(namespace=namespace, name=name, revision="", data=dict(data))
    problems: list[Problem] = []
    for key in sorted(data):
        try:
            value = config.parsed(key)
        except ConfigParseError as exc:
            problems.append(Problem(key, _parse_reason(exc.reason), exc.line))
            continue
        reference = annotations.get(SCHEMA_ANNOTATION_PREFIX + key)
        if reference is None:
            continue
        try:
            schema = await _load_schema(reference, key=key, namespace=namespace, fetch=fetch_schema)
        except ConfigInvalid as exc:
            problems.extend(exc.problems)
            continue
        problem = _schema_problem(key, schema, value)
        if problem is not None:
            problems.append(problem)
    for annotation in annotations:
        if annotation.startswith(SCHEMA_ANNOTATION_PREFIX):
            key = annotation[len(SCHEMA_ANNOTATION_PREFIX) :]
            if key not in data:
                problems.append(Problem(key, f"{annotation} names a key the ConfigMap lacks"))
    if problems:
        raise ConfigInvalid(problems)
