"""One Setting declaration gives the flag, the env var, the default, the help line and the error.

Proves: a flag wins over its variable, which wins over the default; an empty value means the
default; a repeated flag and a comma list in the variable parse alike; a switch takes no value;
``--help`` shows each setting's help, default and variable under its group; a bad value raises
the caller's error class naming where it came from, the other name, the value and the reason.
"""

from __future__ import annotations

import pytest

from hotconf_wire.settings import (
    Setting,
    Values,
    build_parser,
    choice,
    comma_list,
    integer,
    number,
    parse_bool,
    port,
    read_settings,
)


class Bad(Exception):
    pass


PORT = Setting(flag="--port", env="X_PORT", default=8000, parse=port(minimum=1), help="port")
RATE = Setting(flag="--rate", env="X_RATE", default=0.5, parse=number(above=0), help="50% of it")
NAMES = Setting[tuple[str, ...]](
    flag="--name", env="X_NAMES", default=(), parse=comma_list(str), repeat=True, help="names"
)
QUIET = Setting(flag="-q", env="X_QUIET", default=False, parse=parse_bool, switch=True, help="")
MODE = Setting(env="X_MODE", default="a", parse=choice("a", "b"), help="env only")
GROUPS = {"network": (PORT, RATE), "other": (NAMES, QUIET, MODE)}


def read(argv: list[str], env: dict[str, str]) -> Values:
    return read_settings(GROUPS, argv, env, prog="x", description="d", error=Bad)


def test_flag_then_env_then_default() -> None:
    assert read([], {})[PORT] == 8000
    assert read([], {"X_PORT": "9000"})[PORT] == 9000
    assert read(["--port", "9001"], {"X_PORT": "9000"})[PORT] == 9001
    assert read([], {"X_PORT": "  "})[PORT] == 8000
    assert read([], {"X_MODE": "B"})[MODE] == "b"


def test_repeat_and_comma_list_and_switch() -> None:
    assert read(["--name", "a", "--name", "b,c"], {"X_NAMES": "z"})[NAMES] == ("a", "b", "c")
    assert read([], {"X_NAMES": "a, ,b"})[NAMES] == ("a", "b")
    assert read(["-q"], {})[QUIET] is True
    assert read([], {"X_QUIET": "Off"})[QUIET] is False


def test_errors_name_both_and_the_reason() -> None:
    with pytest.raises(Bad, match=r"^--port '0' \(env X_PORT\): not a TCP port \(1-65535\)$"):
        read(["--port", "0"], {})
    with pytest.raises(Bad, match=r"^X_RATE='-1' \(flag --rate\): must be more than 0$"):
        read([], {"X_RATE": "-1"})
    with pytest.raises(Bad, match=r"^X_MODE='c': use a or b$"):
        read([], {"X_MODE": "c"})
    with pytest.raises(ValueError, match="must be between 1 and 3"):
        integer(minimum=1, maximum=3)("4")


def test_help_shows_default_and_variable_by_group() -> None:
    text = build_parser(GROUPS, prog="x", description="d").format_help()
    assert "network:" in text and "other:" in text
    assert "port (default 8000) [env X_PORT]" in " ".join(text.split())
    assert "50% of it (default 0.5) [env X_RATE]" in " ".join(text.split())
    assert "X_MODE" not in text  # no flag, so not in --help
