"""The sidecar's settings: one typed dataclass, parsed from flags and environment variables here.

Called once by :mod:`hotconf_sidecar.__main__`; nothing else in the sidecar reads the
environment. Every flag has an environment variable (the flag wins when both are given), and
each is described in ``--help`` and in ``docs/sidecar.md``. A setting that is missing or
does not parse raises :class:`~hotconf_sidecar._errors.SettingsError`, which names it.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from hotconf_sidecar._errors import SettingsError
from hotconf_wire.envelope import PodRef

__all__ = ["AdapterSettings", "Settings", "parse_settings"]

DEFAULT_PORT: Final = 8790

EventLoop = Literal["auto", "uvloop", "asyncio"]


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
    #: HTTP listen address. Port 8790 on all interfaces: the operator reaches ``podIP:8790``.
    listen_host: str = "0.0.0.0"
    listen_port: int = DEFAULT_PORT
    #: The relay's Unix socket, shared with the app containers through an emptyDir.
    socket: Path = Path("/run/hotconf/hotconf.sock")
    #: Owner-only by default: only processes running as the sidecar's user may connect.
    socket_mode: int = 0o600
    #: Where accepted configs are persisted (an emptyDir survives container restarts).
    state_dir: Path = Path("/var/lib/hotconf")
    #: fsync each state file and its directory. Off: the state dir is an emptyDir, and what a
    #: write() and rename() put there survives any container crash (``kill -9`` included) without
    #: it; fsync only guards against the node losing power, after which a replayed envelope has
    #: expired and the operator reconciles the pod anyway. On (about 1 ms per push, and tens of
    #: ms when the disk is busy) for a state dir on a volume that outlives the node's page cache.
    fsync: bool = False
    #: The operator's Ed25519 public key, PEM text.
    public_key_pem: str
    #: Seconds a push waits for the clients' ACK/NACK before answering ``timeout`` for the rest.
    ack_timeout: float = 5.0
    adapters: AdapterSettings = AdapterSettings()
    #: Python logging level name.
    log_level: str = "INFO"
    #: The event loop: ``uvloop`` (libuv, about a tenth less CPU per push and 2.5 MiB more
    #: resident memory), ``asyncio`` (the standard library's), or ``auto``: uvloop when it is
    #: installed (the ``sidecar`` extra installs it), else asyncio. ``asyncio`` is there to rule
    #: uvloop out when chasing a bug, or to save its memory where CPU does not matter.
    event_loop: EventLoop = "auto"


# (flag, env var, help). Defaults live on the dataclass above; the table below drives argparse.
_ENV: Final = {
    "pod_namespace": "HOTCONF_POD_NAMESPACE",
    "pod_name": "HOTCONF_POD_NAME",
    "pod_uid": "HOTCONF_POD_UID",
    "listen": "HOTCONF_LISTEN",
    "socket": "HOTCONF_SOCKET",
    "socket_mode": "HOTCONF_SOCKET_MODE",
    "state_dir": "HOTCONF_STATE_DIR",
    "fsync": "HOTCONF_FSYNC",
    "public_key_file": "HOTCONF_OPERATOR_PUBLIC_KEY_FILE",
    "public_key": "HOTCONF_OPERATOR_PUBLIC_KEY",
    "ack_timeout": "HOTCONF_ACK_TIMEOUT",
    "files_dir": "HOTCONF_FILES_DIR",
    "notify_url": "HOTCONF_NOTIFY_URL",
    "notify_signal": "HOTCONF_NOTIFY_SIGNAL",
    "notify_pid_file": "HOTCONF_NOTIFY_PID_FILE",
    "log_level": "HOTCONF_LOG_LEVEL",
    "event_loop": "HOTCONF_EVENT_LOOP",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotconf-sidecar",
        description="Verify signed config pushes from the hotconf operator, persist them and "
        "relay them to the pod's processes over a Unix socket. Every flag can also be given as "
        "the environment variable named in its help; the flag wins.",
    )

    def add(flag: str, dest: str, help: str, **kwargs: object) -> None:
        parser.add_argument(flag, dest=dest, help=f"{help} [env {_ENV[dest]}]", **kwargs)  # type: ignore[arg-type]

    add("--pod-namespace", "pod_namespace", "namespace of this pod (required)")
    add("--pod-name", "pod_name", "name of this pod (required)")
    add("--pod-uid", "pod_uid", "UID of this pod (required; binds pushes to this pod instance)")
    add("--listen", "listen", "HTTP listen address HOST:PORT (default 0.0.0.0:8790)")
    add("--socket", "socket", "relay Unix socket path (default /run/hotconf/hotconf.sock)")
    add("--socket-mode", "socket_mode", "octal permissions of the socket file (default 0600)")
    add("--state-dir", "state_dir", "directory for persisted configs (default /var/lib/hotconf)")
    add("--fsync", "fsync", "fsync each persisted config: true or false (default false)")
    add("--public-key-file", "public_key_file", "PEM file with the operator's Ed25519 public key")
    add("--public-key", "public_key", "the operator's Ed25519 public key as PEM text")
    add("--ack-timeout", "ack_timeout", "seconds to wait for client ACK/NACK (default 5)")
    add("--files-dir", "files_dir", "files adapter: write each ConfigMap to DIR/<name>/<key>")
    add("--notify-url", "notify_url", "notify adapter: POST revision metadata to this URL")
    add("--notify-signal", "notify_signal", "signal adapter: signal name, e.g. HUP or SIGUSR1")
    add("--notify-pid-file", "notify_pid_file", "signal adapter: file holding the target's pid")
    add("--log-level", "log_level", "DEBUG, INFO, WARNING or ERROR (default INFO)")
    add("--event-loop", "event_loop", "auto, uvloop or asyncio (default auto: uvloop if installed)")
    return parser


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"--listen {value!r}: expected HOST:PORT, e.g. 0.0.0.0:8790")
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"
    return host, int(port)


def _signal(value: str) -> signal.Signals:
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise SettingsError(f"--notify-signal {value!r} is not a signal name") from None


_BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def parse_settings(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Build :class:`Settings` from command-line flags, falling back to ``environ``."""
    args = vars(_parser().parse_args(list(argv)))
    raw = {k: (v if v is not None else environ.get(_ENV[k]) or None) for k, v in args.items()}

    identity = ("pod_namespace", "pod_name", "pod_uid")
    missing = ["--" + key.replace("_", "-") for key in identity if not raw[key]]
    if missing:
        raise SettingsError(f"missing pod identity: {', '.join(missing)} (or their env vars)")
    pod = PodRef(str(raw["pod_namespace"]), str(raw["pod_name"]), str(raw["pod_uid"]))

    if raw["public_key"]:
        pem = raw["public_key"]
    elif raw["public_key_file"]:
        try:
            pem = Path(raw["public_key_file"]).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"--public-key-file: cannot read it: {exc}") from exc
    else:
        raise SettingsError(
            "the operator's public key is required: --public-key-file or --public-key "
            "(HOTCONF_OPERATOR_PUBLIC_KEY_FILE or HOTCONF_OPERATOR_PUBLIC_KEY)"
        )

    kwargs: dict[str, object] = {}
    if raw["listen"]:
        kwargs["listen_host"], kwargs["listen_port"] = _listen(raw["listen"])
    if raw["socket"]:
        kwargs["socket"] = Path(raw["socket"])
    if raw["socket_mode"]:
        try:
            mode = int(raw["socket_mode"], 8)
        except ValueError:
            raise SettingsError(f"--socket-mode {raw['socket_mode']!r} is not octal") from None
        if not 0 <= mode <= 0o777:
            raise SettingsError(f"--socket-mode {raw['socket_mode']!r} is out of range")
        kwargs["socket_mode"] = mode
    if raw["state_dir"]:
        kwargs["state_dir"] = Path(raw["state_dir"])
    if raw["fsync"]:
        try:
            kwargs["fsync"] = _BOOLEANS[raw["fsync"].strip().lower()]
        except KeyError:
            raise SettingsError(f"--fsync {raw['fsync']!r}: expected true or false") from None
    if raw["ack_timeout"]:
        try:
            timeout = float(raw["ack_timeout"])
        except ValueError:
            raise SettingsError(f"--ack-timeout {raw['ack_timeout']!r} is not a number") from None
        if not 0 <= timeout <= 600:
            raise SettingsError("--ack-timeout must be between 0 and 600 seconds")
        kwargs["ack_timeout"] = timeout
    if raw["log_level"]:
        level = raw["log_level"].upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"--log-level {raw['log_level']!r} is not a level name")
        kwargs["log_level"] = level
    if raw["event_loop"]:
        loop = raw["event_loop"].strip().lower()
        if loop not in ("auto", "uvloop", "asyncio"):
            raise SettingsError(
                f"--event-loop {raw['event_loop']!r}: expected auto, uvloop or asyncio"
            )
        kwargs["event_loop"] = loop

    notify_signal = _signal(raw["notify_signal"]) if raw["notify_signal"] else None
    pid_file = Path(raw["notify_pid_file"]) if raw["notify_pid_file"] else None
    if notify_signal is not None and pid_file is None:
        raise SettingsError("--notify-signal needs --notify-pid-file to know which process")
    if raw["notify_url"] and not raw["notify_url"].startswith(("http://", "https://")):
        raise SettingsError(f"--notify-url {raw['notify_url']!r} must be an http(s) URL")
    adapters = AdapterSettings(
        files_dir=Path(raw["files_dir"]) if raw["files_dir"] else None,
        notify_url=raw["notify_url"],
        notify_signal=notify_signal,
        notify_pid_file=pid_file,
    )
    return Settings(pod=pod, public_key_pem=pem, adapters=adapters, **kwargs)  # type: ignore[arg-type]
