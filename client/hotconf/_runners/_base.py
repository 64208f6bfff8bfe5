"""What every runner shares: lifecycle states, reload events, options, the verdict on a revision.

Subclassed by the blocking runners (:mod:`._blocking`: thread and process modes) and the asyncio
runner (:mod:`._asyncio`). A runner:

1. connects to the relay (:class:`hotconf._connection.Connection`) and waits for a first config;
2. for each arriving revision decides here, in :meth:`BaseRunner._offer`, what it means: the
   revision already running (a resync after a reconnect: ACK again, no restart), a duplicate of
   the one about to start (nothing), or a new one, which is parsed (keys ending in ``.yaml``,
   ``.yml``, ``.json``, ``.toml`` must parse) and given to ``validate``; a failure is NACKed with
   its message and the running task is not touched, a success becomes the *target*;
3. when there is a target, the mode drains the running generation (sets ``draining``, waits up to
   ``drain_timeout``, then cancels / terminates and kills / reports a stuck thread), starts the
   target and ACKs it once it runs. Revisions that arrive meanwhile replace the target, so a burst
   of N updates causes one restart on the newest; a superseded revision gets no answer (the relay
   marks it superseded itself).

A task that returns while not draining, or raises, is logged and not restarted: the runner goes
IDLE and starts the task again on the next new revision. Restarting a crashing task in a loop
would hide the bug and burn CPU; Kubernetes-style restarts belong to the pod.
"""

from __future__ import annotations

import enum
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypedDict

from hotconf._config import Config
from hotconf._connection import Connection
from hotconf._errors import ConfigError, FirstConfigTimeout, RunnerError
from hotconf._settings import ClientSettings
from hotconf_wire.protocol import Ack, ConfigMapRef, ConfigSnapshot, Nack
from hotconf_wire.trace import Tracer

__all__ = [
    "EXIT_STUCK",
    "BaseRunner",
    "EventKind",
    "ReloadEvent",
    "RunnerOptions",
    "RunnerState",
]

logger: Final = logging.getLogger("hotconf")

#: Exit status of a process that ``exit_on_stuck`` ends (EX_SOFTWARE from sysexits.h).
EXIT_STUCK: Final = 70


class RunnerState(enum.Enum):
    """Where a runner is in its lifecycle. Transitions::

    CREATED -> STARTING -> RUNNING <-> DRAINING -> RESTARTING -> RUNNING
                              |            |-> STUCK -> RESTARTING (when the thread returns)
                              v
                             IDLE (task returned or failed; next revision starts it)
    any state -> STOPPED (close(), SIGTERM/SIGINT, or an error out of run())
    """

    CREATED = "created"  # constructed; run()/arun() not called yet
    STARTING = "starting"  # connecting, waiting for the first valid config
    RUNNING = "running"  # a generation of the task runs on the current revision
    DRAINING = "draining"  # `draining` is set; waiting for the task to return
    RESTARTING = "restarting"  # the old generation is gone; starting the new one
    STUCK = "stuck"  # a thread task ignored `draining` past the drain deadline
    IDLE = "idle"  # the task returned or raised on its own; waiting for a new revision
    STOPPED = "stopped"  # finished; a runner runs once


EventKind = Literal["started", "reloaded", "rejected", "stuck", "exited", "failed", "stopped"]


@dataclass(frozen=True, slots=True)
class ReloadEvent:
    """Something an application may want to log or count, passed to ``on_event``.

    ``started``: the first generation runs on ``revision``. ``reloaded``: a new generation runs
    on ``revision`` (``previous`` was running before). ``rejected``: ``revision`` was NACKed with
    ``message``. ``stuck``: the generation on ``revision`` ignored ``draining``. ``exited`` /
    ``failed``: the task returned / raised (``message``) on its own. ``stopped``: the runner ended.
    Times are ``time.monotonic()``: ``received_at`` when the revision's frame arrived,
    ``started_at`` when its generation began to run.
    """

    kind: EventKind
    revision: str | None
    previous: str | None = None
    message: str = ""
    received_at: float | None = None
    started_at: float | None = None


class RunnerOptions(TypedDict, total=False):
    """The keyword options of :func:`hotconf.run` and of every runner, each one optional.

    Declared once, here: ``run`` and the runners' constructors take
    ``**options: Unpack[RunnerOptions]``, so a type checker checks option names and types
    through ``hotconf.run(task, mode=..., **options)`` (and at run time an unknown name raises
    TypeError). Each key below gives its unit, its default and the reason for it::

        hotconf.run(task, mode="process", drain_timeout=20, kill_grace=5)
        options: hotconf.RunnerOptions = {"drain_timeout": 20}
        hotconf.ThreadRunner(task, **options).run()
    """

    #: Relay socket; default None: HOTCONF_SOCKET, then the sidecar's default path.
    socket: str | os.PathLike[str] | None
    #: ConfigMap to follow ("name" or "namespace/name"); default None: the first one served.
    configmap: str | None
    #: Called with each new Config before anything stops; raising rejects (NACKs) the revision.
    #: Runs on the runner's supervisor or the relay connection's thread, never two at once.
    #: Default None: every config that parses is accepted.
    validate: Callable[[Config], object] | None
    #: Seconds a generation gets to return after `draining` is set. Default 10 s: it fits inside
    #: the 30 s termination grace period Kubernetes gives a pod, with room for kill_grace.
    drain_timeout: float
    #: Seconds between SIGTERM and SIGKILL for a process generation (and between cancel and the
    #: stuck report for a coroutine) once drain_timeout has passed. Default 5 s.
    kill_grace: float
    #: Seconds to wait at start for the first valid config before FirstConfigTimeout. Default
    #: 30 s: covers a sidecar that starts a little after the application.
    first_config_timeout: float
    #: Exit the whole process (status 70) when a thread task is stuck, so Kubernetes restarts it.
    #: Default False: the stuck thread is reported and keeps running.
    exit_on_stuck: bool
    #: Called with every ReloadEvent; exceptions are logged. Like ``validate`` it runs on the
    #: runner's supervisor, or in thread mode on the relay connection's thread when that one
    #: begins a switch-over itself, and on the task thread that starts the new generation
    #: ("reloaded", before the task is called); never two calls at once. Default None.
    on_event: Callable[[ReloadEvent], object] | None
    #: Client name sent to the relay (shown in ACK/NACK reports); default None: the program name.
    name: str | None


@dataclass(frozen=True, slots=True)
class _Options:
    """:class:`RunnerOptions` resolved: every option, its default where it was not given.

    Built by :meth:`BaseRunner.__init__` from the keywords, so ``_Options(**options)`` is checked
    against the TypedDict by mypy; the defaults and their reasons are documented there.
    """

    socket: str | os.PathLike[str] | None = None
    configmap: str | None = None
    validate: Callable[[Config], object] | None = None
    drain_timeout: float = 10.0
    kill_grace: float = 5.0
    first_config_timeout: float = 30.0
    exit_on_stuck: bool = False
    on_event: Callable[[ReloadEvent], object] | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        for attribute in ("drain_timeout", "kill_grace", "first_config_timeout"):
            value = getattr(self, attribute)
            if not value >= 0:
                raise ValueError(f"{attribute} must be a number of seconds >= 0, not {value!r}")

    @classmethod
    def resolve(cls, owner: str, options: RunnerOptions) -> _Options:
        """The options given to the runner class ``owner``, checked at run time too: an
        unknown name raises TypeError listing the known ones."""
        unknown = sorted(set(options) - set(RunnerOptions.__optional_keys__))
        if unknown:
            known = ", ".join(sorted(RunnerOptions.__optional_keys__))
            raise TypeError(
                f"{owner}() got unknown option(s) {', '.join(map(repr, unknown))}; "
                f"the options (hotconf.RunnerOptions) are: {known}"
            )
        return cls(**options)


@dataclass(slots=True)
class _Target:
    snapshot: ConfigSnapshot
    config: Config
    received_at: float


@dataclass(slots=True)
class _Running:
    snapshot: ConfigSnapshot
    started_at: float
    extra: dict[str, Any] = field(default_factory=dict)


class BaseRunner:
    """Shared state and decisions; subclasses supply the supervisor loop of their mode."""

    mode: str = ""

    def __init__(self, task: Callable[..., Any], options: RunnerOptions) -> None:
        self.task = task
        self.options = _Options.resolve(type(self).__name__, options)
        self.settings = ClientSettings.resolve(
            socket=self.options.socket, configmap=self.options.configmap
        )
        self._state = RunnerState.CREATED
        self._state_lock = threading.Lock()
        self._ref: ConfigMapRef | None = self.settings.configmap
        self._target: _Target | None = None
        self._running: _Running | None = None
        self._last_rejection = ""
        self._connection: Connection | None = None
        self._gen: GenerationBase | None = None
        self._stopping = False
        self._hurry = False
        self._tracer = Tracer(self.settings.trace_file, proc="client")
        #: When the last generation was retired (for the trace's "client.drained"), if since
        #: the last start.
        self._drained_at: float | None = None

    # -- observable state -----------------------------------------------------------------------

    @property
    def state(self) -> RunnerState:
        return self._state

    @property
    def revision(self) -> str | None:
        """The revision the current (or last) generation runs on."""
        return self._running.snapshot.revision if self._running is not None else None

    def _set_state(self, state: RunnerState) -> None:
        with self._state_lock:
            if self._state is not state:
                if logger.isEnabledFor(logging.DEBUG):  # not the enum lookups on every config
                    logger.debug("hotconf: runner %s -> %s", self._state.value, state.value)
                self._state = state

    def _begin(self) -> None:
        """Move CREATED -> STARTING, refusing a second run (a runner runs once)."""
        with self._state_lock:
            if self._state is not RunnerState.CREATED:
                raise RunnerError(
                    f"this {type(self).__name__} is {self._state.value}: a runner runs once; "
                    f"create a new one (or call hotconf.run again)"
                )
            self._state = RunnerState.STARTING

    def _emit(self, event: ReloadEvent) -> None:
        if self.options.on_event is None:
            return
        try:
            self.options.on_event(event)
        except Exception:
            logger.exception("hotconf: on_event callback failed on a %s event", event.kind)

    # -- the relay --------------------------------------------------------------------------------

    def _connect(self, deliver: Callable[[ConfigSnapshot, float], None]) -> Connection:
        name = self.options.name or f"{os.path.basename(sys.argv[0]) or 'python'} ({self.mode})"
        connection = Connection(
            self.settings.socket,
            configmaps=(self._ref,) if self._ref is not None else (),
            client=name,
            on_snapshot=deliver,
        )
        self._connection = connection
        connection.start()
        return connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()

    def _send(self, message: Ack | Nack) -> None:
        if self._connection is not None:
            self._connection.send(message)

    def _first_config_timeout(self) -> FirstConfigTimeout:
        path = self.settings.socket
        wanted = f"ConfigMap {self._ref}" if self._ref else "a ConfigMap"
        if self._last_rejection:
            why = f"every revision received was rejected; last: {self._last_rejection}"
        elif self._connection is not None and self._connection.connected:
            why = f"the relay on {path} is connected but sent no config for {wanted}"
        else:
            problem = self._connection.last_problem if self._connection else "not connected"
            why = f"no relay answered ({problem})"
        return FirstConfigTimeout(
            f"no config arrived on {path} within {self.options.first_config_timeout:g}s: {why}. "
            "In a pod, check that the hotconf sidecar is injected (annotation "
            "hotconf.dev/configmaps) and that the app and sidecar share the socket's directory; "
            "locally, run the program under `hotconf dev --configmap FILE -- COMMAND`, or set "
            "HOTCONF_SOCKET / socket= to the relay's socket."
        )

    # -- the verdict on one arriving revision -----------------------------------------------------

    def _offer(self, snapshot: ConfigSnapshot, received_at: float) -> bool:
        """Decide what an arriving snapshot means (see the module docstring); True if it is the
        new target."""
        ref = snapshot.ref
        if self._ref is None:
            self._ref = ref
        elif ref != self._ref:
            self._reject(
                snapshot,
                f"this client follows ConfigMap {self._ref} only; "
                f"pass configmap={str(ref)!r} to a runner of its own",
                quiet=True,
            )
            return False
        if self._target is not None and snapshot.revision == self._target.snapshot.revision:
            return False
        running = self._running
        if (
            self._target is None
            and running is not None
            and snapshot.revision == running.snapshot.revision
        ):
            self._send(Ack(ref.namespace, ref.name, snapshot.revision))
            return False
        config = Config.from_snapshot(snapshot)
        try:
            config.parse_all()
            if self.options.validate is not None:
                self.options.validate(config)
        except Exception as exc:
            message = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            self._reject(snapshot, message or type(exc).__name__)
            return False
        self._target = _Target(snapshot, config, received_at)
        if self._tracer.enabled:
            self._tracer.mark("client.received", cm=ref, rev=snapshot.revision, at=received_at)
        return True

    def _reject(self, snapshot: ConfigSnapshot, message: str, *, quiet: bool = False) -> None:
        ref = snapshot.ref
        self._send(Nack(ref.namespace, ref.name, snapshot.revision, message))
        if quiet:
            logger.warning("hotconf: ignoring ConfigMap %s: %s", ref, message)
            return
        self._last_rejection = f"{snapshot.revision[:19]}: {message}"
        logger.warning(
            "hotconf: rejected revision %s of %s, keeping %s: %s",
            snapshot.revision[:19],
            ref,
            self.revision[:19] if self.revision else "nothing running",
            message,
        )
        self._emit(ReloadEvent("rejected", snapshot.revision, self.revision, message))

    def _started(self, target: _Target, started_at: float) -> None:
        """Record that the target's generation runs: ACK it and tell the application."""
        previous = self.revision
        first = self._running is None
        self._running = _Running(target.snapshot, started_at)
        ref = target.snapshot.ref
        trace = self._tracer
        acked_at = now() if trace.enabled else 0.0  # before the sidecar can have the ACK
        self._send(Ack(ref.namespace, ref.name, target.snapshot.revision))
        revision = target.snapshot.revision
        if trace.enabled:
            drained_at, self._drained_at = self._drained_at, None
            if drained_at is not None:
                trace.mark("client.drained", cm=ref, rev=revision, at=drained_at)
            trace.mark("client.started", cm=ref, rev=revision, at=started_at)
            trace.mark("client.acked", cm=ref, rev=revision, at=acked_at)
        self._set_state(RunnerState.RUNNING)
        if first:
            logger.info("hotconf: %s task started on %s revision %s", self.mode, ref, revision[:19])
        else:
            logger.info(
                "hotconf: %s task restarted on %s revision %s", self.mode, ref, revision[:19]
            )
        if self.options.on_event is None:
            return  # no event to build
        self._emit(
            ReloadEvent(
                "started" if first else "reloaded",
                revision,
                previous,
                received_at=target.received_at,
                started_at=started_at,
            )
        )

    def _start_failed(self, target: _Target, error: str) -> None:
        self._reject(target.snapshot, f"the task could not start: {error}")
        self._set_state(RunnerState.IDLE)

    def _handle(self, item: object) -> None:
        """Act on one supervisor message (after :func:`coalesce`); shared by every mode."""
        match item:
            case Arrived(snapshot, received_at):
                self._offer(snapshot, received_at)
            case Exited(generation, error):
                if generation is not self._gen or generation.exited:
                    return
                generation.exited = True
                if self._state in (RunnerState.DRAINING, RunnerState.STUCK):
                    if error is not None:
                        logger.warning("hotconf: the task raised while draining:\n%s", error)
                    return
                generation.reap()
                self._gen = None
                self._ended_alone(error)
            case Stop(reason):
                if self._stopping:
                    logger.warning(
                        "hotconf: %s again: stopping without waiting for the drain", reason
                    )
                    self._hurry = True
                else:
                    logger.info("hotconf: %s: draining the task and stopping", reason)
                    self._stopping = True

    def _ended_alone(self, error: str | None) -> None:
        """The running generation returned or raised while not draining."""
        self._set_state(RunnerState.IDLE)
        revision = self.revision
        if error is None:
            logger.warning(
                "hotconf: the task returned on its own on revision %s; it starts again on the "
                "next new revision",
                (revision or "?")[:19],
            )
            self._emit(ReloadEvent("exited", revision))
        else:
            logger.error(
                "hotconf: the task failed on revision %s; it starts again on the next new "
                "revision:\n%s",
                (revision or "?")[:19],
                error.rstrip(),
            )
            self._emit(ReloadEvent("failed", revision, message=error.strip().splitlines()[-1]))

    def _report_stuck(self, what: str) -> None:
        """Log a generation that will not stop, loudly; exit the process if configured."""
        self._set_state(RunnerState.STUCK)
        revision = self.revision
        logger.critical(
            "hotconf: STUCK: the %s task on revision %s %s; it keeps running and no new "
            "generation starts until it returns%s",
            self.mode,
            (revision or "?")[:19],
            what,
            " — exiting the process (exit_on_stuck=True)" if self.options.exit_on_stuck else "",
        )
        self._emit(ReloadEvent("stuck", revision, message=what))
        if self.options.exit_on_stuck:
            logging.shutdown()
            sys.stderr.flush()
            os._exit(EXIT_STUCK)

    def _finish(self) -> None:
        self._set_state(RunnerState.STOPPED)
        logger.info("hotconf: runner stopped")
        self._emit(ReloadEvent("stopped", self.revision))


@dataclass(frozen=True, slots=True)
class Arrived:
    """Supervisor message: a snapshot came from the relay (``received_at``: :func:`now`)."""

    snapshot: ConfigSnapshot
    received_at: float


class GenerationBase:
    """What both supervisors know of a generation: whether it ended, and how to release it."""

    def __init__(self) -> None:
        #: Set by the supervisor when it learns the run ended; in thread mode also by the
        #: run's own thread when it hands over while the supervisor waits (under the lock
        #: the supervisor takes to stop waiting), never by another thread.
        self.exited = False

    def reap(self) -> None:
        """Release what the run held (e.g. helper threads) once it is known to have ended."""


@dataclass(frozen=True, slots=True)
class Exited:
    """Supervisor message: ``generation`` ended (``error``: a traceback if the task raised)."""

    generation: GenerationBase
    error: str | None


@dataclass(frozen=True, slots=True)
class Stop:
    """Supervisor message: stop the runner (SIGTERM, ``close()``), for ``reason``."""

    reason: str


def coalesce(items: list[object]) -> list[object]:
    """Keep only the newest :class:`Arrived` per ConfigMap, in order with the other messages.

    What makes a burst of updates one restart, on the newest: the supervisors take everything
    waiting in their inbox at once and pass it through here.
    """
    newest: dict[ConfigMapRef, Arrived] = {}
    for item in items:
        if isinstance(item, Arrived):
            newest[item.snapshot.ref] = item
    return [i for i in items if not isinstance(i, Arrived) or newest[i.snapshot.ref] is i]


def now() -> float:
    """The clock of every timestamp in events (system-wide, so process generations share it)."""
    return time.monotonic()
