"""What a sidecar answers the operator: a push's outcome, a pod's state, a refusal.

The sidecar builds these models and encodes them (``POST /v2/push``, ``GET /v2/state``); the
operator decodes the same models from the bytes, so each layout has one encoder and one decoder
(``docs/protocol.md``, "Push API"). A decoder ignores fields it does not know (a newer sidecar
may add some) and raises :class:`hotconf_wire.errors.AnswerError` naming the first field that
is missing or mistyped.

::

    PushAnswer   status applied|unchanged, revision, sequence, a ClientVerdict per client
    PodState     the pod, a HeldConfig (revision, sequence, verdicts) per ConfigMap, and the
                 ids of the operator keys it trusts (``trusted``, absent from older sidecars)
    Refusal      reason and message of a refused push (the body of a 4xx answer)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from hotconf_wire.envelope import PodRef
from hotconf_wire.errors import REJECT_REASONS, AnswerError, EnvelopeError
from hotconf_wire.protocol import ConfigMapRef

__all__ = [
    "ClientResult",
    "ClientVerdict",
    "HeldConfig",
    "PodState",
    "PushAnswer",
    "PushStatus",
    "Refusal",
]

#: One client's answer about one revision: ``ack``/``nack`` are its own; ``timeout`` (no answer
#: within the sidecar's ack timeout), ``superseded`` (a newer revision was sent before it
#: answered), ``gone`` (it disconnected) and ``pending`` (still waiting) are the sidecar's.
ClientResult = Literal["ack", "nack", "timeout", "superseded", "gone", "pending"]
#: ``applied``: the revision was relayed now; ``unchanged``: the pod already held it.
PushStatus = Literal["applied", "unchanged"]

_RESULTS: Final = frozenset(get_args(ClientResult))
_STATUSES: Final = frozenset(get_args(PushStatus))


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _loads(body: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AnswerError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise AnswerError(f"{what} must be a JSON object, not {type(obj).__name__}")
    return obj


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise AnswerError(f"{where}: field {key!r} must be {names}, not {type(value).__name__}")
    return value


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    items: list[Mapping[str, Any]] = _get(obj, key, list, where)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise AnswerError(f"{where}: {key}[{index}] must be an object")
    return items


@dataclass(frozen=True, slots=True)
class ClientVerdict:
    """One client's (or adapter's) answer about one revision of one ConfigMap."""

    id: str  # the relay's id of the connection, or the adapter's name (files, notify-url ...)
    client: str  # the name the client gave in its hello
    pid: int | None
    revision: str
    result: ClientResult
    message: str = ""

    @property
    def who(self) -> str:
        """The client as people read it: ``worker (pid 12)``."""
        name = self.client or self.id or "client"
        return f"{name} (pid {self.pid})" if self.pid is not None else name

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client": self.client,
            "pid": self.pid,
            "revision": self.revision,
            "result": self.result,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, where: str) -> ClientVerdict:
        result = _get(obj, "result", str, where)
        if result not in _RESULTS:
            raise AnswerError(f"{where}: result {result!r} is not one of {sorted(_RESULTS)}")
        pid = obj.get("pid")
        if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
            raise AnswerError(f"{where}: field 'pid' must be an integer or null")
        return cls(
            id=_get(obj, "id", str, where),
            client=_get(obj, "client", str, where),
            pid=pid,
            revision=_get(obj, "revision", str, where),
            result=result,
            message=_get(obj, "message", str, where),
        )


def _verdicts(obj: Mapping[str, Any], where: str) -> tuple[ClientVerdict, ...]:
    return tuple(
        ClientVerdict.from_json(item, where=f"{where}.clients[{i}]")
        for i, item in enumerate(_list(obj, "clients", where))
    )


@dataclass(frozen=True, slots=True)
class PushAnswer:
    """The sidecar's 200 answer to a push: what it did and what each client said."""

    status: PushStatus
    revision: str
    sequence: int
    clients: tuple[ClientVerdict, ...] = ()

    def encode(self) -> bytes:
        return _dumps(
            {
                "status": self.status,
                "revision": self.revision,
                "sequence": self.sequence,
                "clients": [c.to_json() for c in self.clients],
            }
        )

    @classmethod
    def decode(cls, body: bytes) -> PushAnswer:
        obj = _loads(body, "push answer")
        status = _get(obj, "status", str, "push answer")
        if status not in _STATUSES:
            raise AnswerError(f"push answer: status {status!r} is not one of {sorted(_STATUSES)}")
        return cls(
            status=status,
            revision=_get(obj, "revision", str, "push answer"),
            sequence=_get(obj, "sequence", int, "push answer"),
            clients=_verdicts(obj, "push answer"),
        )


@dataclass(frozen=True, slots=True)
class HeldConfig:
    """One ConfigMap as a pod holds it: the revision, its sequence, each client's verdict."""

    ref: ConfigMapRef
    revision: str
    sequence: int
    clients: tuple[ClientVerdict, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.ref.namespace,
            "name": self.ref.name,
            "revision": self.revision,
            "sequence": self.sequence,
            "clients": [c.to_json() for c in self.clients],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, where: str) -> HeldConfig:
        return cls(
            ref=ConfigMapRef(_get(obj, "namespace", str, where), _get(obj, "name", str, where)),
            revision=_get(obj, "revision", str, where),
            sequence=_get(obj, "sequence", int, where),
            clients=_verdicts(obj, where),
        )


@dataclass(frozen=True, slots=True)
class PodState:
    """``GET /v2/state``: the pod the sidecar serves and what it holds per ConfigMap."""

    pod: PodRef
    configmaps: tuple[HeldConfig, ...] = ()
    #: The key ids (:func:`hotconf_wire.envelope.key_id`) the sidecar verifies pushes with;
    #: ``None`` from a sidecar that predates key rotation.
    trusted: tuple[str, ...] | None = None

    def held(self, ref: ConfigMapRef) -> HeldConfig | None:
        """What the pod holds of ``ref``, or ``None`` when it holds no revision of it."""
        for held in self.configmaps:
            if held.ref == ref:
                return held
        return None

    def encode(self) -> bytes:
        pod = {"namespace": self.pod.namespace, "name": self.pod.name, "uid": self.pod.uid}
        obj: dict[str, Any] = {"pod": pod, "configmaps": [c.to_json() for c in self.configmaps]}
        if self.trusted is not None:
            obj["trusted"] = list(self.trusted)
        return _dumps(obj)

    @classmethod
    def decode(cls, body: bytes) -> PodState:
        obj = _loads(body, "pod state")
        pod = _get(obj, "pod", dict, "pod state")
        trusted: tuple[str, ...] | None = None
        if obj.get("trusted") is not None:
            ids = _get(obj, "trusted", list, "pod state")
            if not all(isinstance(i, str) for i in ids):
                raise AnswerError("pod state: field 'trusted' must be a list of key ids")
            trusted = tuple(ids)
        return cls(
            pod=PodRef(
                namespace=_get(pod, "namespace", str, "pod state.pod"),
                name=_get(pod, "name", str, "pod state.pod"),
                uid=_get(pod, "uid", str, "pod state.pod"),
            ),
            configmaps=tuple(
                HeldConfig.from_json(item, where=f"pod state.configmaps[{i}]")
                for i, item in enumerate(_list(obj, "configmaps", "pod state"))
            ),
            trusted=trusted,
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """The body of a 4xx answer: why the sidecar refused the request."""

    reason: str
    message: str

    @classmethod
    def of(cls, error: EnvelopeError) -> Refusal:
        return cls(error.reason, error.message)

    def encode(self) -> bytes:
        return _dumps({"error": {"reason": self.reason, "message": self.message}})

    @classmethod
    def decode(cls, body: bytes) -> Refusal:
        """Decode a refusal; a reason this side does not know is kept as it is."""
        error = _get(_loads(body, "refusal"), "error", dict, "refusal")
        return cls(_get(error, "reason", str, "refusal"), _get(error, "message", str, "refusal"))

    @property
    def known(self) -> bool:
        """The reason is one of :data:`hotconf_wire.errors.REJECT_REASONS`."""
        return self.reason in REJECT_REASONS
