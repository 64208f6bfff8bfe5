"""The exception tree of hotconf; every error hotconf raises is one of these.

::

    HotconfError               (hotconf_wire.errors: the root of every part of hotconf)
    ├── ProtocolError          a frame broke wire protocol v1 (.code says which rule)
    ├── ConfigError            a config is unusable
    │   ├── ConfigParseError   a key or a manifest does not parse (.source, .line)
    │   └── ConfigRejected     the application's validate() hook refused it (sent as a NACK)
    ├── RelayUnavailable       no relay answers on the socket; retryable
    │   └── FirstConfigTimeout no config arrived before the start-up deadline
    └── RunnerError            a runner was used against its lifecycle

A task that ignores ``draining`` past the drain deadline is not an exception: the runner keeps
serving, reports it loudly (``RunnerState.STUCK``, a ``stuck`` event, a critical log line) and,
with ``exit_on_stuck``, exits the process with ``EXIT_STUCK`` so that Kubernetes restarts it.

Retryable conditions (``RelayUnavailable``) and verdicts on a config (``ConfigError``) are
different classes so that callers act on the class, never on a message.
"""

from __future__ import annotations

from hotconf_wire.errors import HotconfError, ProtocolError

__all__ = [
    "ConfigError",
    "ConfigParseError",
    "ConfigRejected",
    "FirstConfigTimeout",
    "HotconfError",
    "ProtocolError",
    "RelayUnavailable",
    "RunnerError",
]


class ConfigError(HotconfError):
    """A config cannot be used; the running task keeps its previous config."""


class ConfigParseError(ConfigError):
    """A ConfigMap manifest or one of its keys does not parse.

    ``source`` names the file or key, ``line`` is 1-based when known.
    """

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.line = line
        self.reason = message


class ConfigRejected(ConfigError):
    """The application's ``validate`` hook refused a revision; it is NACKed with this message."""


class RelayUnavailable(HotconfError):
    """No relay (sidecar or ``hotconf dev``) answers on the socket; the client retries."""


class FirstConfigTimeout(RelayUnavailable):
    """No config arrived before the start-up deadline, so there is nothing to run the task on."""


class RunnerError(HotconfError):
    """A runner was used against its lifecycle (e.g. run twice, or closed before it ran)."""
