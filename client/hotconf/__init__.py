"""hotconf: configuration hot reload for services on Kubernetes, the application side.

``hotconf.run(task, mode=...)`` runs ``task(config, draining)`` on the current config from the
pod's relay (the hotconf sidecar, or ``hotconf dev`` on a laptop); when a new revision arrives it
sets ``draining``, waits for the task to return, and starts it again on the new config.

Public surface: everything in ``__all__``; modules whose names start with ``_`` are private.
``hotconf.protocol`` (wire protocol v1) and ``hotconf.relay`` (the relay server) are public so
that the sidecar and other tools build on them.
"""

from hotconf._config import Config
from hotconf._errors import (
    ConfigError,
    ConfigParseError,
    ConfigRejected,
    FirstConfigTimeout,
    HotconfError,
    ProtocolError,
    RelayUnavailable,
    RunnerError,
    TaskStuck,
)

__all__ = [
    "Config",
    "ConfigError",
    "ConfigParseError",
    "ConfigRejected",
    "FirstConfigTimeout",
    "HotconfError",
    "ProtocolError",
    "RelayUnavailable",
    "RunnerError",
    "TaskStuck",
]
