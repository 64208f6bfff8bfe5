"""hotconf: configuration hot reload for services on Kubernetes, the application side.

``hotconf.run(task, mode=...)`` runs ``task(config, draining)`` on the current config from the
pod's relay (the hotconf sidecar, or ``hotconf dev`` on a laptop); when a new revision arrives it
sets ``draining``, waits for the task to return, and starts it again on the new config.

Public surface: everything in ``__all__``, and ``hotconf.testing`` (test doubles for
applications); modules whose names start with ``_`` are private. The wire protocol and the relay
server live in ``hotconf_wire``, shared with the sidecar and the operator.
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
)
from hotconf._runners._api import Mode, run
from hotconf._runners._asyncio import AsyncRunner
from hotconf._runners._base import EXIT_STUCK, ReloadEvent, RunnerOptions, RunnerState
from hotconf._runners._process import ProcessRunner
from hotconf._runners._repeat import arepeat, repeat
from hotconf._runners._thread import ThreadRunner
from hotconf_wire import __version__ as __version__

__all__ = [
    "EXIT_STUCK",
    "AsyncRunner",
    "Config",
    "ConfigError",
    "ConfigParseError",
    "ConfigRejected",
    "FirstConfigTimeout",
    "HotconfError",
    "Mode",
    "ProcessRunner",
    "ProtocolError",
    "RelayUnavailable",
    "ReloadEvent",
    "RunnerError",
    "RunnerOptions",
    "RunnerState",
    "ThreadRunner",
    "arepeat",
    "repeat",
    "run",
]
