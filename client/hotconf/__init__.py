"""hotconf: configuration hot reload for services on Kubernetes, the application side.

``hotconf.run(task, mode=...)`` runs ``task(config, draining)`` on the current config from the
pod's relay (the hotconf sidecar, or ``hotconf dev`` on a laptop); when a new revision arrives it
sets ``draining``, waits for the task to return, and starts it again on the new config.

Public surface: everything in ``__all__``; modules whose names start with ``_`` are private.
``hotconf.protocol`` (wire protocol v1) and ``hotconf.relay`` (the relay server) are public so
that the sidecar and other tools build on them.
"""

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from hotconf._runners._api import Mode, run
    from hotconf._runners._asyncio import AsyncRunner
    from hotconf._runners._base import EXIT_STUCK, ReloadEvent, RunnerOptions, RunnerState
    from hotconf._runners._process import ProcessRunner
    from hotconf._runners._repeat import arepeat, repeat
    from hotconf._runners._thread import ThreadRunner

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

#: The runners' public names, imported on first use: the sidecar imports ``hotconf.relay`` and
#: ``hotconf.protocol`` only, and loading the runners (multiprocessing, threads) would cost it
#: memory for nothing.
_LAZY: dict[str, str] = {
    "EXIT_STUCK": "hotconf._runners._base",
    "AsyncRunner": "hotconf._runners._asyncio",
    "Mode": "hotconf._runners._api",
    "ProcessRunner": "hotconf._runners._process",
    "ReloadEvent": "hotconf._runners._base",
    "RunnerOptions": "hotconf._runners._base",
    "RunnerState": "hotconf._runners._base",
    "ThreadRunner": "hotconf._runners._thread",
    "arepeat": "hotconf._runners._repeat",
    "repeat": "hotconf._runners._repeat",
    "run": "hotconf._runners._api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hotconf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
