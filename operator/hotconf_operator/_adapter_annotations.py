"""Pod annotations that turn on the sidecar's adapters, for applications in any language.

Called by :func:`hotconf_operator._injection.inject` once the sidecar container is built: it
reads the annotations below, and edits the pod and its sidecar so that the adapter works in a
real pod. ``docs/integrations/`` has a page per adapter.

=====================================  =============================================================
``hotconf.dev/files: /etc/hotconf``    Files: an ``emptyDir`` (``hotconf-files``) mounted
                                       read-write in the sidecar (``HOTCONF_FILES_DIR``) and
                                       read-only at that path in every application container,
                                       which also gets ``HOTCONF_FILES_DIR`` set to it; each
                                       ConfigMap is ``<path>/<name>/<key>``, swapped atomically.
``hotconf.dev/notify-url: URL``        Notify URL: the sidecar POSTs each revision to it
                                       (``HOTCONF_NOTIFY_URL``); ``localhost`` is the pod.
``hotconf.dev/signal: SIGHUP``         Signal: the sidecar sends it at each revision to the main
``hotconf.dev/signal-process: NAME``   process named ``NAME`` (``HOTCONF_NOTIFY_SIGNAL``,
                                       ``HOTCONF_NOTIFY_PROCESS``); the pod gets
                                       ``shareProcessNamespace: true`` so that the sidecar sees
                                       it, and the sidecar runs as the application's user, the
                                       only way a process may signal another one without
                                       ``CAP_KILL`` (which the restricted Pod Security profile
                                       forbids, and which a non-root container cannot use).
=====================================  =============================================================

An annotation that does not parse, or that the pod's spec contradicts, turns its adapter off and
adds a warning naming the annotation, the rule and the fix (the webhook shows it to kubectl and
logs it); the pod is admitted all the same, as for ``hotconf.dev/port``. Pure functions of the
pod's JSON: injecting twice changes nothing because the injection runs once per pod.
"""

from __future__ import annotations

import posixpath
import signal
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = [
    "FILES_ANNOTATION",
    "FILES_VOLUME",
    "NOTIFY_URL_ANNOTATION",
    "SIDECAR_FILES_DIR",
    "SIGNAL_ANNOTATION",
    "SIGNAL_PROCESS_ANNOTATION",
    "AdapterRequest",
    "add_adapters",
    "read_adapters",
]

FILES_ANNOTATION: Final = "hotconf.dev/files"
NOTIFY_URL_ANNOTATION: Final = "hotconf.dev/notify-url"
SIGNAL_ANNOTATION: Final = "hotconf.dev/signal"
SIGNAL_PROCESS_ANNOTATION: Final = "hotconf.dev/signal-process"
FILES_VOLUME: Final = "hotconf-files"
#: Where the sidecar writes the files, whatever path the application reads them at.
SIDECAR_FILES_DIR: Final = "/run/hotconf-files"
#: Disk-backed, not memory: tmpfs pages would count against the sidecar's memory limit. A
#: revision is written next to the one it replaces, so this holds eight 1 MiB ConfigMaps.
FILES_SIZE_LIMIT: Final = "16Mi"
#: A signal a process cannot handle cannot ask it to reload.
_UNCATCHABLE: Final = frozenset({signal.SIGKILL, signal.SIGSTOP})


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterRequest:
    """The adapters a pod's annotations ask for, each None when off or malformed."""

    #: The path the application containers read the files at.
    files: str | None = None
    notify_url: str | None = None
    signal: signal.Signals | None = None
    signal_process: str | None = None


def _files(raw: str, reserved: tuple[str, ...], warnings: list[str]) -> str | None:
    path = raw.strip()
    rule = None
    if not path.startswith("/") or posixpath.normpath(path) != path or path == "/":
        rule = "is not a normalized absolute directory path, e.g. /etc/hotconf"
    elif any(path == r or path.startswith(r + "/") or r.startswith(path + "/") for r in reserved):
        rule = f"overlaps hotconf's own directories ({', '.join(reserved)}); choose another"
    if rule is None:
        return path
    warnings.append(f"hotconf: {FILES_ANNOTATION}={raw!r} {rule}; the files adapter is off")
    return None


def _notify_url(raw: str, warnings: list[str]) -> str | None:
    url = raw.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in url
    except ValueError:
        ok = False
    if ok:
        return url
    warnings.append(
        f"hotconf: {NOTIFY_URL_ANNOTATION}={raw!r} is not an http(s) URL with a host, e.g. "
        f"http://localhost:8080/-/reload; the notify URL adapter is off"
    )
    return None


def _signal(raw: str, warnings: list[str]) -> signal.Signals | None:
    name = raw.strip().upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    found = signal.Signals.__members__.get(name)
    if found is not None and found not in _UNCATCHABLE:
        return found
    warnings.append(
        f"hotconf: {SIGNAL_ANNOTATION}={raw!r} is not a signal a process can handle (use e.g. "
        f"SIGHUP or SIGUSR1; not SIGKILL or SIGSTOP); the signal adapter is off"
    )
    return None


def _process(raw: str | None, warnings: list[str]) -> str | None:
    name = (raw or "").strip()
    if name and "/" not in name:
        return name
    if raw is None:
        problem = f"{SIGNAL_ANNOTATION} needs {SIGNAL_PROCESS_ANNOTATION}: the name of the process"
    else:
        problem = f"{SIGNAL_PROCESS_ANNOTATION}={raw!r} is not a process name"
    warnings.append(
        f"hotconf: {problem} to signal, as ps -o comm shows it (e.g. nginx); "
        f"the signal adapter is off"
    )
    return None


def read_adapters(
    annotations: dict[str, Any],
    spec: dict[str, Any],
    *,
    reserved: tuple[str, ...],
    warnings: list[str],
) -> AdapterRequest:
    """The adapters ``annotations`` ask for; a malformed one is off, with a message in
    ``warnings``. ``reserved``: the directories hotconf mounts itself, which files may not use."""
    files = notify_url = signum = process = None
    if (raw := annotations.get(FILES_ANNOTATION)) is not None:
        files = _files(str(raw), reserved, warnings)
    if (raw := annotations.get(NOTIFY_URL_ANNOTATION)) is not None:
        notify_url = _notify_url(str(raw), warnings)
    raw_process = annotations.get(SIGNAL_PROCESS_ANNOTATION)
    if (raw := annotations.get(SIGNAL_ANNOTATION)) is not None:
        signum = _signal(str(raw), warnings)
        process = _process(None if raw_process is None else str(raw_process), warnings)
        if (
            signum is not None
            and process is not None
            and spec.get("shareProcessNamespace") is False
        ):
            warnings.append(
                f"hotconf: {SIGNAL_ANNOTATION} needs shareProcessNamespace: true, and the pod "
                f"sets it to false; remove that field or the annotation. The signal adapter is off"
            )
            process = None
    elif raw_process is not None:
        warnings.append(
            f"hotconf: {SIGNAL_PROCESS_ANNOTATION} does nothing without {SIGNAL_ANNOTATION} "
            f"(e.g. SIGHUP)"
        )
    if signum is None or process is None:
        signum = process = None
    return AdapterRequest(files=files, notify_url=notify_url, signal=signum, signal_process=process)


def _set_env(container: dict[str, Any], name: str, value: str) -> None:
    env = container.setdefault("env", [])
    if not any(e.get("name") == name for e in env):
        env.append({"name": name, "value": value})


def _application_user(spec: dict[str, Any], warnings: list[str]) -> int | None:
    """The one user every application container runs as, from the spec; None (with a warning
    saying why the signal may be refused) when the spec does not say, or says several."""
    pod_user = (spec.get("securityContext") or {}).get("runAsUser")
    users = {
        c.get("name"): (c.get("securityContext") or {}).get("runAsUser", pod_user)
        for c in spec.get("containers") or []
    }
    known = set(users.values())
    if len(known) == 1:
        (user,) = known
        if isinstance(user, int) and user > 0:
            return user
    if 0 in known:
        advice = (
            "a container runs as root (runAsUser 0), and the sidecar, non-root and without "
            "capabilities, cannot signal a root process: run the application as another user"
        )
    elif None in known:
        advice = (
            "the pod does not say which user the application runs as (runAsUser), so the "
            "sidecar keeps its own and can signal the process only if it runs as that user too: "
            "set securityContext.runAsUser on the pod"
        )
    else:
        listed = ", ".join(f"{name}: {user}" for name, user in users.items())
        advice = (
            f"the containers run as different users ({listed}) and the sidecar can signal "
            f"only its own user's processes: run the target container as the sidecar's user"
        )
    warnings.append(f"hotconf: {SIGNAL_ANNOTATION}: {advice}")
    return None


def add_adapters(
    spec: dict[str, Any],
    sidecar: dict[str, Any],
    request: AdapterRequest,
    *,
    warnings: list[str],
) -> None:
    """Edit ``spec`` and its ``sidecar`` container (already built, not yet in the spec) so that
    the adapters of ``request`` work in the pod."""
    containers = spec.get("containers") or []
    if request.files is not None:
        volumes = spec.setdefault("volumes", [])
        if not any(v.get("name") == FILES_VOLUME for v in volumes):
            volumes.append({"name": FILES_VOLUME, "emptyDir": {"sizeLimit": FILES_SIZE_LIMIT}})
        sidecar.setdefault("volumeMounts", []).append(
            {"name": FILES_VOLUME, "mountPath": SIDECAR_FILES_DIR}
        )
        _set_env(sidecar, "HOTCONF_FILES_DIR", SIDECAR_FILES_DIR)
        for container in containers:
            mounts = container.setdefault("volumeMounts", [])
            taken = [m for m in mounts if m.get("mountPath") == request.files]
            if taken and taken[0].get("name") != FILES_VOLUME:
                warnings.append(
                    f"hotconf: {FILES_ANNOTATION}={request.files!r}: container "
                    f"{container.get('name')!r} already mounts volume {taken[0].get('name')!r} "
                    f"there, so it does not get the files; choose another path"
                )
                continue
            if not taken:
                mounts.append({"name": FILES_VOLUME, "mountPath": request.files, "readOnly": True})
            _set_env(container, "HOTCONF_FILES_DIR", request.files)
    if request.notify_url is not None:
        _set_env(sidecar, "HOTCONF_NOTIFY_URL", request.notify_url)
    if request.signal is not None and request.signal_process is not None:
        spec["shareProcessNamespace"] = True
        _set_env(sidecar, "HOTCONF_NOTIFY_SIGNAL", request.signal.name)
        _set_env(sidecar, "HOTCONF_NOTIFY_PROCESS", request.signal_process)
        user = _application_user(spec, warnings)
        if user is not None:
            sidecar.setdefault("securityContext", {})["runAsUser"] = user
