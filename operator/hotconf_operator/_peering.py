"""Whether kopf peering has paused this replica: :class:`PauseWatcher`, read from kopf's log.

kopf pauses a replica's watches while a peer of higher priority is alive, and offers no hook
or flag to ask whether it did. ``__main__`` installs a :class:`PauseWatcher` on kopf's peering
logger, as ``_metrics.WatchRestartCounter`` does on its watcher's; ``_reconcile`` asks it before
repairing a change whose watch event it did not get: a paused replica gets no events by design,
and the active replica rolls that change out.
"""

from __future__ import annotations

import logging

__all__ = ["PauseWatcher"]

#: The logger kopf's peering writes its pause and resume records to.
PEERING_LOGGER = "kopf._core.engines.peering"


class PauseWatcher(logging.Handler):
    """Follows kopf's "Pausing operations ..." and "Resuming operations ..." records."""

    _PAUSED = ("Pausing operations in favour of ", "Pausing all operators, including self")
    _RESUMED = "Resuming operations after the pause"

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        #: Whether kopf has paused this replica (False until kopf says it paused).
        self.paused = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(self._PAUSED):
            self.paused = True
        elif message.startswith(self._RESUMED):
            self.paused = False

    def install(self) -> None:
        peering = logging.getLogger(PEERING_LOGGER)
        if peering.getEffectiveLevel() > logging.INFO:
            peering.setLevel(logging.INFO)
        peering.addHandler(self)
