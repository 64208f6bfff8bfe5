"""The sidecar's settings: typed dataclasses, parsed from flags and environment variables here.

Called once by :mod:`hotconf_sidecar.__main__`; nothing else in the sidecar reads the
environment. Each setting is one :class:`hotconf_wire.settings.Setting` below (flag,
environment variable, default, ``--help`` text and parser together), read with the rules every
part of hotconf shares: a flag wins over its environment variable, which wins over the default;
an empty value means the default; booleans and log levels parse alike (see
:mod:`hotconf_wire.settings`). ``docs/sidecar.md`` describes each setting. A setting that is
missing or does not parse raises :class:`~hotconf_sidecar._errors.SettingsError`, naming the
flag, the variable and the fix.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast

from hotconf_sidecar._errors import SettingsError
from hotconf_wire import logs, trace
from hotconf_wire.envelope import DEFAULT_PORT, PodRef
from hotconf_wire.logs import LogFormat, log_format_setting
from hotconf_wire.settings import (
    LogLevel,
    Setting,
    choice,
    number,
    parse_bool,
    read_settings,
)

__all__ = ["SETTINGS", "AdapterSettings", "EventLoop", "Settings", "parse_settings"]

EventLoop = Literal["auto", "uvloop", "asyncio"]


# -- parsers of the sidecar's own kinds of value ---------------------------------------------------


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, e.g. 0.0.0.0:{DEFAULT_PORT}")
    return host.removeprefix("[").removesuffix("]") or "0.0.0.0", int(port)


def _socket_mode(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise ValueError("not an octal mode, e.g. 0600 or 0660") from None
    if not 0 <= mode <= 0o777:
        raise ValueError("out of range: permissions are 0000 to 0777")
    return mode


def _signal(value: str) -> signal.Signals:
    name = value.strip().upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise ValueError("not a signal name; use e.g. HUP or SIGUSR1") from None


def _http_url(value: str) -> str:
    if not value.strip().startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    return value.strip()


def _event_loop(value: str) -> EventLoop:
    return cast(EventLoop, choice("auto", "uvloop", "asyncio")(value))


# -- the declarations: flag, environment variable, default, help and parser of each setting --------

POD_NAMESPACE: Final = Setting[str | None](
    flag="--pod-namespace",
    env="HOTCONF_POD_NAMESPACE",
    default=None,
    parse=str.strip,
    metavar="NS",
    help="namespace of this pod (required)",
)
POD_NAME: Final = Setting[str | None](
    flag="--pod-name",
    env="HOTCONF_POD_NAME",
    default=None,
    parse=str.strip,
    metavar="NAME",
    help="name of this pod (required)",
)
POD_UID: Final = Setting[str | None](
    flag="--pod-uid",
    env="HOTCONF_POD_UID",
    default=None,
    parse=str.strip,
    metavar="UID",
    help="UID of this pod (required; binds pushes to this pod instance)",
)
LISTEN: Final = Setting(
    flag="--listen",
    env="HOTCONF_LISTEN",
    #: All interfaces: the operator reaches ``podIP:<port>``.
    default=("0.0.0.0", DEFAULT_PORT),
    parse=_listen,
    metavar="HOST:PORT",
    help="HTTP listen address",
    shown_default=f"0.0.0.0:{DEFAULT_PORT}",
)
SOCKET: Final = Setting(
    flag="--socket",
    env="HOTCONF_SOCKET",
    #: Shared with the app containers through an emptyDir.
    default=Path("/run/hotconf/hotconf.sock"),
    parse=Path,
    metavar="PATH",
    help="relay Unix socket path",
)
SOCKET_MODE: Final = Setting(
    flag="--socket-mode",
    env="HOTCONF_SOCKET_MODE",
    #: Owner-only: only processes running as the sidecar's user may connect.
    default=0o600,
    parse=_socket_mode,
    metavar="MODE",
    help="octal permissions of the socket file",
    shown_default="0600",
)
STATE_DIR: Final = Setting(
    flag="--state-dir",
    env="HOTCONF_STATE_DIR",
    #: An emptyDir survives container restarts.
    default=Path("/var/lib/hotconf"),
    parse=Path,
    metavar="DIR",
    help="directory for persisted configs",
)
FSYNC: Final = Setting(
    flag="--fsync",
    env="HOTCONF_FSYNC",
    default=False,  # why: see Settings.fsync
    parse=parse_bool,
    metavar="BOOL",
    help="fsync each persisted config: true or false",
)
PUBLIC_KEY_FILE: Final = Setting[Path | None](
    flag="--public-key-file",
    env="HOTCONF_OPERATOR_PUBLIC_KEY_FILE",
    default=None,
    parse=Path,
    metavar="PATH",
    help="PEM file with the operator's Ed25519 public key",
)
PUBLIC_KEY: Final = Setting[str | None](
    flag="--public-key",
    env="HOTCONF_OPERATOR_PUBLIC_KEY",
    default=None,
    parse=str,
    metavar="PEM",
    help="the operator's Ed25519 public key as PEM text (wins over the file)",
)
ACK_TIMEOUT: Final = Setting(
    flag="--ack-timeout",
    env="HOTCONF_ACK_TIMEOUT",
    default=5.0,
    parse=number(minimum=0, maximum=600),
    metavar="SECONDS",
    help="seconds to wait for client ACK/NACK",
)
FILES_DIR: Final = Setting[Path | None](
    flag="--files-dir",
    env="HOTCONF_FILES_DIR",
    default=None,
    parse=Path,
    metavar="DIR",
    help="files adapter: write each ConfigMap to DIR/<name>/<key>",
)
NOTIFY_URL: Final = Setting[str | None](
    flag="--notify-url",
    env="HOTCONF_NOTIFY_URL",
    default=None,
    parse=_http_url,
    metavar="URL",
    help="notify adapter: POST revision metadata to this http(s) URL",
)
NOTIFY_SIGNAL: Final = Setting[signal.Signals | None](
    flag="--notify-signal",
    env="HOTCONF_NOTIFY_SIGNAL",
    default=None,
    parse=_signal,
    metavar="SIGNAL",
    help="signal adapter: signal name, e.g. HUP or SIGUSR1",
)
NOTIFY_PID_FILE: Final = Setting[Path | None](
    flag="--notify-pid-file",
    env="HOTCONF_NOTIFY_PID_FILE",
    default=None,
    parse=Path,
    metavar="PATH",
    help="signal adapter: file holding the target's pid",
)
LOG_LEVEL: Final = logs.LOG_LEVEL
LOG_FORMAT: Final = log_format_setting(LogFormat.JSON)
TRACE_FILE: Final = trace.TRACE_FILE
EVENT_LOOP: Final = Setting[EventLoop](
    flag="--event-loop",
    env="HOTCONF_EVENT_LOOP",
    default="auto",
    parse=_event_loop,
    metavar="LOOP",
    help="auto, uvloop or asyncio",
    shown_default="auto: uvloop if installed",
)

#: Every setting under its --help heading.
SETTINGS: Final = {
    "pod identity (Downward API)": (POD_NAMESPACE, POD_NAME, POD_UID),
    "operator key (one of the two is required)": (PUBLIC_KEY_FILE, PUBLIC_KEY),
    "serving": (LISTEN, SOCKET, SOCKET_MODE, STATE_DIR, FSYNC, ACK_TIMEOUT),
    "adapters, for applications that do not speak the wire protocol": (
        FILES_DIR,
        NOTIFY_URL,
        NOTIFY_SIGNAL,
        NOTIFY_PID_FILE,
    ),
    "process": (LOG_LEVEL, LOG_FORMAT, EVENT_LOOP, TRACE_FILE),
}

_PROG: Final = "hotconf-sidecar"
_DESCRIPTION: Final = (
    "Verify signed config pushes from the hotconf operator, persist them and relay them to the "
    "pod's processes over a Unix socket. Every flag can also be given as the environment "
    "variable named in its help; the flag wins. Booleans: true/false, yes/no, on/off, 1/0."
)


# -- the typed, grouped result ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterSettings:
    """Adapters for applications that do not speak the wire protocol (all optional)."""

    #: Each ConfigMap is written to ``<files_dir>/<name>/<key>``, the whole set swapped at once.
    files_dir: Path | None = None
    #: POSTed ``{"namespace","name","revision"}`` (never values) after each applied revision.
    notify_url: str | None = None
    #: Signal sent to the process whose pid is in ``notify_pid_file`` after each revision.
    notify_signal: signal.Signals | None = None
    notify_pid_file: Path | None = None

    @property
    def any(self) -> bool:
        return bool(self.files_dir or self.notify_url or self.notify_signal)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the sidecar needs to run; see ``docs/sidecar.md`` for each field."""

    #: The pod this sidecar speaks for (Downward API in a cluster); pushes for others are refused.
    pod: PodRef
    #: HTTP listen address (see ``LISTEN``).
    listen_host: str = LISTEN.default[0]
    listen_port: int = LISTEN.default[1]
    #: The relay's Unix socket.
    socket: Path = SOCKET.default
    socket_mode: int = SOCKET_MODE.default
    #: Where accepted configs are persisted.
    state_dir: Path = STATE_DIR.default
    #: fsync each state file and its directory. Off: the state dir is an emptyDir, and what a
    #: write() and rename() put there survives any container crash (``kill -9`` included) without
    #: it; fsync only guards against the node losing power, after which a replayed envelope has
    #: expired and the operator reconciles the pod anyway. On (about 1 ms per push, and tens of
    #: ms when the disk is busy) for a state dir on a volume that outlives the node's page cache.
    fsync: bool = FSYNC.default
    #: The operator's Ed25519 public key, PEM text.
    public_key_pem: str
    #: Seconds a push waits for the clients' ACK/NACK before answering ``timeout`` for the rest.
    ack_timeout: float = ACK_TIMEOUT.default
    adapters: AdapterSettings = AdapterSettings()
    log_level: LogLevel = LOG_LEVEL.default
    #: JSON lines by default: a sidecar's logs are read by the cluster's log pipeline.
    log_format: LogFormat = LOG_FORMAT.default
    #: The rollout trace's file (``hotconf_wire.trace``); empty: no trace.
    trace_file: str = TRACE_FILE.default
    #: The event loop: ``uvloop`` (libuv, about a tenth less CPU per push and 2.5 MiB more
    #: resident memory), ``asyncio`` (the standard library's), or ``auto``: uvloop when it is
    #: installed (the ``sidecar`` extra installs it), else asyncio. ``asyncio`` is there to rule
    #: uvloop out when chasing a bug, or to save its memory where CPU does not matter.
    event_loop: EventLoop = EVENT_LOOP.default


# -- parsing ---------------------------------------------------------------------------------------


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from command-line flags, falling back to ``environ``."""
    values = read_settings(
        SETTINGS, argv, environ, prog=_PROG, description=_DESCRIPTION, error=SettingsError
    )
    identity = (POD_NAMESPACE, POD_NAME, POD_UID)
    namespace, name, uid = (values[setting] for setting in identity)
    if namespace is None or name is None or uid is None:
        missing = ", ".join(s.names for s in identity if values[s] is None)
        raise SettingsError(f"missing pod identity: {missing} (in a pod: from the Downward API)")

    pem = values[PUBLIC_KEY]
    key_file = values[PUBLIC_KEY_FILE]
    if pem is None and key_file is not None:
        try:
            pem = key_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"{PUBLIC_KEY_FILE.names} {str(key_file)!r}: cannot read it: {exc}"
            ) from exc
    if pem is None:
        raise SettingsError(
            f"the operator's public key is required: {PUBLIC_KEY_FILE.names} or {PUBLIC_KEY.names}"
        )

    notify_signal, pid_file = values[NOTIFY_SIGNAL], values[NOTIFY_PID_FILE]
    if notify_signal is not None and pid_file is None:
        raise SettingsError(
            f"{NOTIFY_SIGNAL.flag} needs {NOTIFY_PID_FILE.names} to know which process"
        )
    host, port = values[LISTEN]
    return Settings(
        pod=PodRef(namespace, name, uid),
        listen_host=host,
        listen_port=port,
        socket=values[SOCKET],
        socket_mode=values[SOCKET_MODE],
        state_dir=values[STATE_DIR],
        fsync=values[FSYNC],
        public_key_pem=pem,
        ack_timeout=values[ACK_TIMEOUT],
        adapters=AdapterSettings(
            files_dir=values[FILES_DIR],
            notify_url=values[NOTIFY_URL],
            notify_signal=notify_signal,
            notify_pid_file=pid_file,
        ),
        log_level=values[LOG_LEVEL],
        log_format=values[LOG_FORMAT],
        trace_file=values[TRACE_FILE],
        event_loop=values[EVENT_LOOP],
    )
