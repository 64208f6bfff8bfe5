"""The operator's exception tree; every error hotconf-operator raises on purpose is one of these.

::

    OperatorError                       (hotconf_wire.errors.HotconfError)
    ├── SettingsError                   a flag or environment variable is invalid
    ├── SigningKeyError                 the Ed25519 private key cannot be loaded or created
    ├── WebhookCertificateError         the webhook's certificate Secret cannot be used or written
    ├── KubeApiError                    the Kubernetes API refused or failed a request (.status)
    ├── ConfigInvalid                   a ConfigMap failed validation (.problems: key/line/why)
    ├── RollbackRefused                 hotconf rollback refuses that revision; nothing written
    └── PushFailed                      one push to one pod did not produce a verdict
        ├── PodUnreachable              connection refused/reset, timeout, 5xx: retryable
        └── PushRefused                 the sidecar answered 4xx (.reason): never retried

Retryable failures (:class:`PodUnreachable`) and final verdicts (:class:`PushRefused`) are
different classes: the pusher retries the first and returns the second at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotconf_wire.errors import HotconfError

__all__ = [
    "ConfigInvalid",
    "KubeApiError",
    "OperatorError",
    "PodUnreachable",
    "Problem",
    "PushFailed",
    "PushRefused",
    "RollbackRefused",
    "SettingsError",
    "SigningKeyError",
    "WebhookCertificateError",
]


class OperatorError(HotconfError):
    """Base of the operator's own errors."""


class SettingsError(OperatorError):
    """A setting is invalid; the message names the flag, the environment variable and the fix."""


class SigningKeyError(OperatorError):
    """The signing key cannot be read, parsed or created."""


class WebhookCertificateError(OperatorError):
    """The webhook's serving certificate Secret cannot be read, parsed or written."""


class KubeApiError(OperatorError):
    """A Kubernetes API request failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a ConfigMap is invalid: which key, which line (1-based, if known), why."""

    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.key}, line {self.line}" if self.line is not None else self.key
        return f"{where}: {self.message}"


class ConfigInvalid(OperatorError):
    """A ConfigMap failed validation; nothing is pushed anywhere."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class RollbackRefused(OperatorError):
    """A rollback cannot be done as asked (no such revision, none good, or it fails validation
    now); nothing was written. The message names the ConfigMap, the revision and the reason."""


class PushFailed(OperatorError):
    """One push (or state read) to one pod failed."""


class PodUnreachable(PushFailed):
    """No verdict from the pod: connection error, timeout or a 5xx answer. Retryable."""


class PushRefused(PushFailed):
    """The sidecar refused the envelope with a 4xx answer; ``reason`` is its word for why."""

    def __init__(self, reason: str, message: str, *, status: int) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.status = status
