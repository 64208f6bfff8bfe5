"""Validation rejects what applications would fail to parse or what breaks a key's schema.

Proves: each bad key is reported with its key, line and message; inline and ConfigMap-held
JSON Schemas are checked; a schema annotation for a missing key or an unreadable schema is
itself a problem; a valid ConfigMap passes.
"""

from __future__ import annotations

import pytest

from hotconf_operator._errors import ConfigInvalid, KubeApiError
from hotconf_operator._validation import validate_configmap

SCHEMA = '{"type": "object", "required": ["port"], "properties": {"port": {"type": "integer"}}}'


async def check(data: dict[str, str], annotations: dict[str, str] | None = None, fetch=None):
    await validate_configmap(
        namespace="ns", name="app", data=data, annotations=annotations or {}, fetch_schema=fetch
    )


async def test_valid_configmap_passes() -> None:
    await check({"a.yaml": "port: 1\n", "b.json": '{"x": 1}', "c.toml": "x = 1\n", "d": "{"},
                {"hotconf.dev/schema.a.yaml": SCHEMA})  # fmt: skip


async def test_every_bad_key_is_reported_with_its_line() -> None:
    with pytest.raises(ConfigInvalid) as info:
        await check({"a.yaml": "ok: 1\nbad: [\n", "b.json": '{\n  "x": }', "c.toml": "x = \n"})
    problems = {p.key: p for p in info.value.problems}
    assert set(problems) == {"a.yaml", "b.json", "c.toml"}
    assert problems["b.json"].line == 2
    assert problems["a.yaml"].line is not None and problems["a.yaml"].line >= 2
    assert "b.json, line 2" in str(info.value)


async def test_inline_schema_violation_names_the_path() -> None:
    with pytest.raises(ConfigInvalid) as info:
        await check({"a.yaml": "port: eighty\n"}, {"hotconf.dev/schema.a.yaml": SCHEMA})
    (problem,) = info.value.problems
    assert problem.key == "a.yaml" and "port" in problem.message and "integer" in problem.message


async def test_schema_from_another_configmap() -> None:
    calls = []

    async def fetch(namespace: str, name: str, key: str) -> str:
        calls.append((namespace, name, key))
        return "type: object\nrequired: [port]\n"

    await check({"a.yaml": "port: 1\n"}, {"hotconf.dev/schema.a.yaml": "schemas/app.yaml"}, fetch)
    with pytest.raises(ConfigInvalid, match="port"):
        await check({"a.yaml": "{}\n"}, {"hotconf.dev/schema.a.yaml": "schemas/app.yaml"}, fetch)
    assert calls[0] == ("ns", "schemas", "app.yaml")


async def test_unreadable_schema_and_stray_annotation_are_problems() -> None:
    async def missing(namespace: str, name: str, key: str) -> str:
        raise KubeApiError("not found", status=404)

    with pytest.raises(ConfigInvalid) as info:
        await check(
            {"a.yaml": "port: 1\n"},
            {"hotconf.dev/schema.a.yaml": "schemas/app.yaml", "hotconf.dev/schema.gone": SCHEMA},
            missing,
        )
    messages = [str(p) for p in info.value.problems]
    assert any("schema ConfigMap ns/schemas does not exist" in m for m in messages)
    assert any("gone" in m and "lacks" in m for m in messages)


async def test_schema_key_missing_or_api_failure_say_which() -> None:
    async def no_key(namespace: str, name: str, key: str) -> str:
        raise KeyError(key)

    async def failing(namespace: str, name: str, key: str) -> str:
        raise KubeApiError("GET ...: HTTP 403: forbidden", status=403)

    annotations = {"hotconf.dev/schema.a.yaml": "schemas/app.yaml"}
    with pytest.raises(ConfigInvalid, match=r"schema ConfigMap ns/schemas has no key app\.yaml"):
        await check({"a.yaml": "port: 1\n"}, annotations, no_key)
    with pytest.raises(ConfigInvalid, match=r"ns/schemas cannot be read: GET \.\.\.: HTTP 403"):
        await check({"a.yaml": "port: 1\n"}, annotations, failing)


MARKER = "m4rker-value"
RULES = {
    "type": ('{"properties": {"max": {"type": "integer"}}}', f"max: {MARKER}\n"),
    "enum": ('{"properties": {"mode": {"enum": ["a", "b"]}}}', f"mode: {MARKER}\n"),
    "const": ('{"properties": {"mode": {"const": "a"}}}', f"mode: {MARKER}\n"),
    "pattern": ('{"properties": {"x": {"pattern": "^[0-9]+$"}}}', f"x: {MARKER}\n"),
    "maxLength": ('{"properties": {"x": {"maxLength": 3}}}', f"x: {MARKER}\n"),
    "minimum": ('{"properties": {"x": {"type": "integer", "minimum": 5}}}', "x: 1\n"),
    "items": ('{"properties": {"x": {"items": {"type": "integer"}}}}', f"x: [{MARKER}]\n"),
    "oneOf": ('{"oneOf": [{"type": "integer"}, {"type": "array"}]}', f"{MARKER}\n"),
    "not": ('{"properties": {"x": {"not": {"type": "string"}}}}', f"x: {MARKER}\n"),
    "additionalProperties": ('{"additionalProperties": false}', f"x: {MARKER}\n"),
}


@pytest.mark.parametrize("rule", sorted(RULES))
async def test_a_schema_violation_names_key_path_and_rule_never_the_value(rule: str) -> None:
    """Whatever rule breaks, the problem names the key, the path and the rule and what it
    expects, and the offending value is nowhere in it (it reaches Events, status and logs)."""
    schema, text = RULES[rule]
    with pytest.raises(ConfigInvalid) as info:
        await check({"app.yaml": text}, {"hotconf.dev/schema.app.yaml": schema})
    (problem,) = info.value.problems
    assert MARKER not in str(info.value)
    assert problem.key == "app.yaml" and "schema violation at " in problem.message
    assert 'rule "' in problem.message


async def test_a_type_violation_says_the_expected_type() -> None:
    """The message for the commonest mistake reads: key, path, rule, the type expected."""
    with pytest.raises(ConfigInvalid) as info:
        await check({"a.yaml": f"port: {MARKER}\n"}, {"hotconf.dev/schema.a.yaml": SCHEMA})
    assert (
        str(info.value) == 'a.yaml: schema violation at port: rule "type": expected type "integer"'
    )


async def test_a_parse_error_withholds_the_text_the_parser_quotes() -> None:
    """PyYAML quotes alias names and characters from the text: those are withheld too."""
    with pytest.raises(ConfigInvalid) as info:
        await check({"a.yaml": f"pw: *{MARKER}\n", "b.yaml": "x: [1\n"})
    text = str(info.value)
    assert MARKER not in text and "undefined alias (text withheld)" in text
    assert "'<stream end>'" in text  # the parser's own placeholder is no value: kept
