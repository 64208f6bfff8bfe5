"""Where the application library reads its environment: the one place, called by the runners.

Each setting may come from a keyword of :func:`hotconf.run` (which wins) or the environment:

``HOTCONF_SOCKET``
    Path of the relay's Unix socket. Default ``/run/hotconf/hotconf.sock``, where the injected
    sidecar listens (the pod shares ``/run/hotconf`` between containers). ``hotconf dev`` sets it.
``HOTCONF_NAMESPACE``
    Namespace of a ConfigMap named without one (``configmap="app"``). Default: the pod's own
    namespace from the service account mount, else ``default``. ``hotconf dev`` sets it to the
    manifest's namespace.
``HOTCONF_TRACE_FILE``
    Append the rollout trace's lines (:mod:`hotconf_wire.trace`: when each revision arrived,
    the old generation drained, the new one started and was ACKed) to this file. Default: off.

All are :class:`hotconf_wire.settings.Setting` declarations read with the rules the sidecar and
the operator share (an empty value means the default). The library has no flags, so neither has
one; it has no boolean or log-level setting either (logging is the application's to set up).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hotconf._errors import HotconfError
from hotconf_wire.protocol import ConfigMapRef, refs
from hotconf_wire.settings import Setting
from hotconf_wire.trace import TRACE_FILE

__all__ = ["DEFAULT_SOCKET", "NAMESPACE", "SOCKET", "TRACE_FILE", "ClientSettings"]

DEFAULT_SOCKET: Final = "/run/hotconf/hotconf.sock"

SOCKET: Final = Setting(
    env="HOTCONF_SOCKET",
    default=Path(DEFAULT_SOCKET),
    parse=Path,
    help="path of the relay's Unix socket",
)
NAMESPACE: Final = Setting[str | None](
    env="HOTCONF_NAMESPACE",
    default=None,  # then the pod's own namespace, else "default"
    parse=str.strip,
    help="namespace of a ConfigMap named without one",
)
_SA_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """The resolved connection settings of one runner."""

    #: The relay's Unix socket.
    socket: Path
    #: The ConfigMap to follow; None means "the first one the relay serves".
    configmap: ConfigMapRef | None
    #: The rollout trace's file; empty: no trace.
    trace_file: str = ""

    @classmethod
    def resolve(
        cls,
        *,
        socket: str | os.PathLike[str] | None,
        configmap: str | None,
        environ: Mapping[str, str] = os.environ,
    ) -> ClientSettings:
        path = (
            Path(socket) if socket is not None else SOCKET.from_environ(environ, error=HotconfError)
        )
        trace_file = TRACE_FILE.from_environ(environ, error=HotconfError)
        if configmap is None:
            return cls(path, None, trace_file)
        namespace = (
            NAMESPACE.from_environ(environ, error=HotconfError) or _pod_namespace() or "default"
        )
        (ref,) = refs([configmap], namespace=namespace)
        return cls(path, ref, trace_file)


def _pod_namespace() -> str | None:
    try:
        return _SA_NAMESPACE.read_text().strip() or None
    except OSError:
        return None
