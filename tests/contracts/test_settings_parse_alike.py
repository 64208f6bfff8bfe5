"""Booleans and log levels parse alike in the operator, the sidecar and the client.

Proves: every boolean setting of every part is read by ``hotconf_wire.settings.parse_bool`` and
every log-level setting by ``parse_log_level`` (so a new one cannot bring its own rule); the
operator's ``HOTCONF_STANDALONE`` and the sidecar's ``--fsync``/``HOTCONF_FSYNC`` take the same
words in any case and refuse the same ones; both parts' ``--log-level``/``HOTCONF_LOG_LEVEL``
give the same :class:`LogLevel`; a bad value's error names the flag and the environment variable;
an empty variable means the default in every part.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import hotconf._settings as client
import hotconf_operator._settings as operator
import hotconf_sidecar._settings as sidecar
from hotconf_operator._errors import SettingsError as OperatorSettingsError
from hotconf_sidecar._errors import SettingsError as SidecarSettingsError
from hotconf_wire.settings import (
    FALSE_WORDS,
    TRUE_WORDS,
    LogLevel,
    Setting,
    parse_bool,
    parse_log_level,
)

OPERATOR_BASE = {"HOTCONF_SIGNING_KEY_FILE": "/k"}
SIDECAR_BASE = {
    "HOTCONF_POD_NAMESPACE": "ns",
    "HOTCONF_POD_NAME": "pod",
    "HOTCONF_POD_UID": "uid",
    "HOTCONF_OPERATOR_PUBLIC_KEY": "PEM",
}


def declared(module: Any) -> list[Setting[Any]]:
    return [value for value in vars(module).values() if isinstance(value, Setting)]


@pytest.mark.parametrize("module", [operator, sidecar, client], ids=lambda m: m.__name__)
def test_every_boolean_and_log_level_uses_the_shared_parser(module: Any) -> None:
    settings = declared(module)
    assert settings, f"{module.__name__} declares no Setting"
    for setting in settings:
        if isinstance(setting.default, bool):
            assert setting.parse is parse_bool, setting.env
        if isinstance(setting.default, LogLevel) or setting.env == "HOTCONF_LOG_LEVEL":
            assert setting.parse is parse_log_level, setting.env
    if hasattr(module, "SETTINGS"):  # flags and env: the --help table holds every declaration
        grouped = {id(s) for group in module.SETTINGS.values() for s in group}
        assert grouped == {id(s) for s in settings}


def words() -> list[tuple[str, bool]]:
    cases = []
    for word in sorted(TRUE_WORDS | FALSE_WORDS):
        for spelled in (word, word.upper(), word.capitalize(), f" {word} "):
            cases.append((spelled, word in TRUE_WORDS))
    return cases


@pytest.mark.parametrize(("text", "expected"), words())
def test_booleans_parse_alike(text: str, expected: bool) -> None:
    assert {"true", "false", "yes", "no", "1", "0", "on", "off"} == TRUE_WORDS | FALSE_WORDS
    op = operator.parse_settings([], OPERATOR_BASE | {"HOTCONF_STANDALONE": text})
    side_env = sidecar.parse_settings([], SIDECAR_BASE | {"HOTCONF_FSYNC": text})
    side_flag = sidecar.parse_settings(["--fsync", text], SIDECAR_BASE)
    assert op.peering.standalone is side_env.fsync is side_flag.fsync is expected


@pytest.mark.parametrize("text", ["sometimes", "y", "t", "2", "enabled"])
def test_a_bad_boolean_names_flag_and_variable(text: str) -> None:
    with pytest.raises(OperatorSettingsError) as op:
        operator.parse_settings([], OPERATOR_BASE | {"HOTCONF_STANDALONE": text})
    assert "HOTCONF_STANDALONE" in str(op.value) and "--standalone" in str(op.value)
    for argv, env in (([], {"HOTCONF_FSYNC": text}), (["--fsync", text], {})):
        with pytest.raises(SidecarSettingsError) as side:
            sidecar.parse_settings(argv, SIDECAR_BASE | env)
        assert "HOTCONF_FSYNC" in str(side.value) and "--fsync" in str(side.value)
        assert repr(text) in str(side.value) and "use true or false" in str(side.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("debug", LogLevel.DEBUG),
        ("INFO", LogLevel.INFO),
        ("Warning", LogLevel.WARNING),
        (" error ", LogLevel.ERROR),
    ],
)
def test_log_levels_parse_alike(text: str, expected: LogLevel) -> None:
    env = {"HOTCONF_LOG_LEVEL": text}
    assert operator.parse_settings([], OPERATOR_BASE | env).log_level is expected
    assert sidecar.parse_settings([], SIDECAR_BASE | env).log_level is expected
    assert operator.parse_settings(["--log-level", text], OPERATOR_BASE).log_level is expected
    assert sidecar.parse_settings(["--log-level", text], SIDECAR_BASE).log_level is expected
    assert expected == expected.value and expected.number == getattr(logging, expected.name)


@pytest.mark.parametrize("text", ["loud", "warn", "critical", "5"])
def test_a_bad_log_level_names_flag_and_variable(text: str) -> None:
    for parse, base, error in (
        (operator.parse_settings, OPERATOR_BASE, OperatorSettingsError),
        (sidecar.parse_settings, SIDECAR_BASE, SidecarSettingsError),
    ):
        for argv, env in (([], {"HOTCONF_LOG_LEVEL": text}), (["--log-level", text], {})):
            with pytest.raises(error) as caught:
                parse(argv, base | env)
            message = str(caught.value)
            assert "HOTCONF_LOG_LEVEL" in message and "--log-level" in message, message
            assert "debug, info, warning or error" in message


def test_an_empty_variable_means_the_default_in_every_part(tmp_path: Any) -> None:
    empty = {"HOTCONF_STANDALONE": " ", "HOTCONF_LOG_LEVEL": "", "HOTCONF_METRICS_PORT": ""}
    config = operator.parse_settings([], OPERATOR_BASE | empty)
    assert not config.peering.standalone and config.log_level is LogLevel.INFO
    assert config.serving.metrics_port == operator.METRICS_PORT.default
    empty = {"HOTCONF_FSYNC": "", "HOTCONF_LOG_LEVEL": " ", "HOTCONF_LISTEN": ""}
    settings = sidecar.parse_settings([], SIDECAR_BASE | empty)
    assert not settings.fsync and settings.log_level is LogLevel.INFO
    assert settings.listen_port == sidecar.LISTEN.default[1]
    resolved = client.ClientSettings.resolve(
        socket=None, configmap="app", environ={"HOTCONF_SOCKET": "", "HOTCONF_NAMESPACE": " "}
    )
    assert str(resolved.socket) == client.DEFAULT_SOCKET
    assert resolved.configmap is not None and resolved.configmap.namespace
