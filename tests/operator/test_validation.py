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
