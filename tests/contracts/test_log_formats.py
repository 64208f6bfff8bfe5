"""The operator and the sidecar write the same log fields, as JSON or as text (logfmt).

Proves: both formatters give ``ts``, ``level``, ``logger``, ``msg`` (and ``exc`` for a
traceback), text quoting what needs it so that a line parses back to the same values; the real
``hotconf-operator`` and ``hotconf-sidecar`` processes write lines of either format, chosen by
``--log-format`` or ``HOTCONF_LOG_FORMAT``; a bad format is refused naming flag and variable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sidecar_harness import SidecarProcess, Signer

from hotconf_wire.logs import JsonFormatter, LogFormat, TextFormatter, parse_log_format

PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
FIELDS = {"ts", "level", "logger", "msg"}


def parse_text(line: str) -> dict[str, str]:
    fields = {}
    for key, value in PAIR.findall(line):
        fields[key] = json.loads(value) if value.startswith('"') else value
    return fields


def parse(line: str, log_format: LogFormat) -> dict[str, object]:
    if log_format is LogFormat.JSON:
        parsed: dict[str, object] = json.loads(line)
        return parsed
    return dict(parse_text(line))


def record(msg: str, *, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("hotconf_x", logging.WARNING, __file__, 1, msg, None, info)


@pytest.mark.parametrize(
    "msg", ["plain", 'with "quotes" and = signs', "two\nlines", "é ünïcode", ""]
)
def test_both_formats_carry_the_same_fields(msg: str) -> None:
    as_json = json.loads(JsonFormatter().format(record(msg)))
    as_text = parse_text(TextFormatter().format(record(msg)))
    assert set(as_json) == set(as_text) == FIELDS
    for key in ("level", "logger", "msg"):
        assert as_json[key] == as_text[key]
    assert as_json["msg"] == msg and as_json["level"] == "warning"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", as_text["ts"])


def test_a_traceback_is_one_field_in_both() -> None:
    as_json = json.loads(JsonFormatter().format(record("failed", exc=True)))
    text_line = TextFormatter().format(record("failed", exc=True))
    assert "\n" not in text_line
    assert "ValueError: boom" in as_json["exc"] == parse_text(text_line)["exc"]


def test_a_bad_format_is_refused() -> None:
    assert parse_log_format(" JSON ") is LogFormat.JSON
    with pytest.raises(ValueError, match="use json or text"):
        parse_log_format("yaml")


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_the_operator_writes_either_format(log_format: LogFormat, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "HOTCONF_"))}
    env.update(HOME=str(tmp_path), KUBECONFIG=str(tmp_path / "none"))
    env["HOTCONF_LOG_FORMAT"] = log_format.value
    done = subprocess.run(
        [Path(sys.executable).with_name("hotconf-operator"), "--signing-key-file", "/nonexistent"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, done.stderr
    for line in lines:
        entry = parse(line, log_format)
        assert FIELDS <= set(entry), line
    assert any(parse(line, log_format)["level"] == "error" for line in lines)


@pytest.mark.parametrize("log_format", list(LogFormat))
def test_the_sidecar_writes_either_format(log_format: LogFormat, tmp_path: Path) -> None:
    signer = Signer()
    sidecar = SidecarProcess(tmp_path, signer, "--log-format", log_format.value).start()
    try:
        assert sidecar.push(signer.body({"k": "v"})).status == 200
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()
    lines = [line for line in sidecar.logs().splitlines() if line.strip()]
    entries = [parse(line, log_format) for line in lines]
    assert all(FIELDS <= set(e) for e in entries), lines
    assert any("push" in str(e["msg"]) and "applied" in str(e["msg"]) for e in entries), lines


def test_a_bad_format_stops_the_sidecar_naming_flag_and_variable() -> None:
    done = subprocess.run(
        [Path(sys.executable).with_name("hotconf-sidecar"), "--log-format", "yaml"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--log-format" in done.stderr and "HOTCONF_LOG_FORMAT" in done.stderr
