"""The signal adapter finds the application by its process name, as in a pod with
``shareProcessNamespace``: a ``#!`` shell script with a ``trap`` gets the signal at each
revision; a main process is signalled and not its workers of the same name; a process that
takes its name while the push waits is signalled; no match by the ACK timeout, or two
unrelated matches at once, are a NACK naming what was found; a name is matched as
``ps -o comm`` shows it (cut to 15 bytes) or as ``argv[0]``; the sidecar's settings refuse
contradictory targets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sidecar_harness import SidecarProcess, Signer

from hotconf_sidecar._errors import SettingsError
from hotconf_sidecar._processes import ProcessLookupFailed, find_process
from hotconf_sidecar._settings import parse_settings

# A POSIX shell application: on HUP it records which of its processes got it. Started with
# "worker", it is a child of the main process with the same name (like nginx's workers).
_APP = """#!/bin/sh
role="${1:-main}"
trap 'echo "HUP $role" >> "$OUT"' HUP
if [ "$role" = main ]; then "$0" worker & fi
echo "$role" >> "$OUT.started"
while :; do sleep 1 & wait $!; done
"""


@pytest.fixture
def app_script(tmp_path: Path) -> Path:
    """The script, under a name unique on this host (pods here are processes of one host)."""
    script = tmp_path / f"hcapp{uuid.uuid4().hex[:8]}"
    script.write_text(_APP)
    script.chmod(0o755)
    return script


def _start(script: Path, out: Path, *, roles: int) -> subprocess.Popen[bytes]:
    app = subprocess.Popen([str(script)], env={**os.environ, "OUT": str(out)},
                           start_new_session=True)  # fmt: skip
    started = Path(f"{out}.started")
    deadline = time.monotonic() + 10
    while not started.exists() or len(started.read_text().split()) < roles:
        assert time.monotonic() < deadline, "the application did not start"
        time.sleep(0.02)
    return app


def _kill(app: subprocess.Popen[bytes]) -> None:
    os.killpg(app.pid, 9)
    app.wait()


@pytest.fixture
def sidecar(tmp_path: Path, signer: Signer, app_script: Path) -> Iterator[SidecarProcess]:
    side = SidecarProcess(
        tmp_path, signer, "--notify-signal", "SIGHUP", "--notify-process", app_script.name
    ).start()
    try:
        yield side
    finally:
        side.stop()


def test_signal_reaches_the_main_process_named_and_not_its_workers(
    tmp_path: Path, signer: Signer, app_script: Path, sidecar: SidecarProcess
) -> None:
    out = tmp_path / "signals"
    app = _start(app_script, out, roles=2)
    try:
        [signalled] = sidecar.push(signer.body({"k": "v"})).body["clients"]
        assert (signalled["id"], signalled["result"]) == ("adapter:signal", "ack"), signalled
        assert signalled["message"] == f"SIGHUP sent to pid {app.pid}"
        deadline = time.monotonic() + 10
        while not out.exists():
            assert time.monotonic() < deadline, "the trap did not run"
            time.sleep(0.02)
        [signalled] = sidecar.push(signer.body({"k": "w"})).body["clients"]
        assert signalled["result"] == "ack"
        while out.read_text().count("\n") < 2:
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.02)
        assert out.read_text() == "HUP main\nHUP main\n"  # the worker never got one
    finally:
        _kill(app)


def test_no_process_or_two_main_processes_of_the_name_are_a_nack(
    tmp_path: Path, signer: Signer, app_script: Path, sidecar: SidecarProcess
) -> None:
    [signalled] = sidecar.push(signer.body({"k": "v"})).body["clients"]
    assert signalled["result"] == "nack"
    assert f"no process named {app_script.name!r}" in signalled["message"]

    first = _start(app_script, tmp_path / "one", roles=2)
    second = _start(app_script, tmp_path / "two", roles=2)
    try:
        [signalled] = sidecar.push(signer.body({"k": "w"})).body["clients"]
        assert signalled["result"] == "nack"
        assert f"2 processes named {app_script.name!r}" in signalled["message"]
        assert f"{first.pid}" in signalled["message"] and f"{second.pid}" in signalled["message"]
        assert not (tmp_path / "one").exists() and not (tmp_path / "two").exists()
    finally:
        _kill(first)
        _kill(second)


# A process that takes the name it is looked up by only once it is told to ("go" exists), after
# its handler is installed: like a wrapper that execs the application a moment later.
_RENAMED = """
import ctypes, pathlib, signal, sys, time
out, go, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
signal.signal(signal.SIGHUP, lambda *_: out.write_text("HUP"))
while not go.exists():
    time.sleep(0.01)
ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: /proc/self/comm
time.sleep(60)
"""


def test_a_process_that_takes_the_name_while_the_push_waits_is_signalled(
    tmp_path: Path, signer: Signer, app_script: Path, sidecar: SidecarProcess
) -> None:
    out, go = tmp_path / "signals", tmp_path / "go"
    app = subprocess.Popen([sys.executable, "-c", _RENAMED, str(out), str(go), app_script.name])
    answers: list[dict[str, Any]] = []
    push = threading.Thread(
        target=lambda: answers.append(sidecar.push(signer.body({"k": "v"})).body)
    )
    try:
        push.start()
        time.sleep(0.3)  # the sidecar's first lookups find no such process
        go.touch()
        push.join(30)
        [answer] = answers
        [signalled] = answer["clients"]
        assert signalled["result"] == "ack", signalled
        assert signalled["message"] == f"SIGHUP sent to pid {app.pid}"
        deadline = time.monotonic() + 10
        while not out.exists():
            assert time.monotonic() < deadline, "the handler did not run"
            time.sleep(0.02)
    finally:
        app.kill()
        app.wait()
        push.join(30)


def _fake_proc(root: Path, pid: int, *, comm: str, argv: list[str], ppid: int = 1) -> None:
    entry = root / str(pid)
    entry.mkdir(parents=True)
    (entry / "comm").write_text(comm + "\n")
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (entry / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1")


def test_names_match_as_ps_shows_them_or_as_argv0(tmp_path: Path) -> None:
    long_name = "a-long-script-name"  # the kernel keeps 15 bytes of it
    # A "#!/bin/sh" script: the kernel names it after the script, its argv[0] is the shell.
    _fake_proc(tmp_path, 10, comm=long_name[:15], argv=["/bin/sh", f"/app/{long_name}"])
    _fake_proc(tmp_path, 11, comm="java", argv=["/opt/jre/bin/java", "-jar", "app.jar"])
    _fake_proc(tmp_path, 12, comm="node", argv=["my-api"], ppid=11)
    _fake_proc(tmp_path, 13, comm="weird) S 9", argv=["weird"], ppid=10)
    assert find_process(long_name, proc=tmp_path, exclude=0) == 10
    assert find_process("java", proc=tmp_path, exclude=0) == 11
    assert find_process("my-api", proc=tmp_path, exclude=0) == 12  # by argv[0]
    assert find_process("weird) S 9", proc=tmp_path, exclude=0) == 13
    with pytest.raises(ProcessLookupFailed, match="no process named 'ava'"):
        find_process("ava", proc=tmp_path, exclude=0)
    with pytest.raises(ProcessLookupFailed, match="no process named 'java'"):
        find_process("java", proc=tmp_path, exclude=11)  # the sidecar itself never matches


_IDENTITY = {"HOTCONF_POD_NAMESPACE": "ns", "HOTCONF_POD_NAME": "p", "HOTCONF_POD_UID": "u",
             "HOTCONF_OPERATOR_PUBLIC_KEY": "pem"}  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--notify-signal", "HUP"], "--notify-signal needs --notify-process"),
        (["--notify-signal", "HUP", "--notify-process", "a", "--notify-pid-file", "/p"],
         "give one of them"),
        (["--notify-process", "nginx"], "HOTCONF_NOTIFY_SIGNAL is unset"),
        (["--notify-signal", "HUP", "--notify-process", "/usr/bin/nginx"], "has no '/'"),
    ],
)  # fmt: skip
def test_settings_refuse_a_signal_without_exactly_one_target(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        parse_settings(argv, _IDENTITY)


def test_settings_take_a_process_name() -> None:
    settings = parse_settings(["--notify-signal", "usr1"], {**_IDENTITY,
                              "HOTCONF_NOTIFY_PROCESS": " my-server "})  # fmt: skip
    assert settings.adapters.notify_process == "my-server"
    assert settings.adapters.notify_signal is not None
    assert settings.adapters.notify_signal.name == "SIGUSR1"
