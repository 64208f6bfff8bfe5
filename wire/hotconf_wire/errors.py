"""The root of hotconf's exception tree, and the errors of the shared wire.

Every error any part of hotconf raises on purpose derives from :class:`HotconfError`: the
application library (``hotconf``), the sidecar and the operator each hang their own subtree
under it. The wire's own::

    HotconfError
    ├── ProtocolError     a frame broke wire protocol v1 (.code: one of protocol.ERROR_CODES)
    ├── EnvelopeError     a push was refused (.reason: one of REJECT_REASONS, .status: HTTP)
    ├── AnswerError       a sidecar's answer (push answer, pod state, refusal) does not parse
    └── RelayError        the relay cannot serve (e.g. another relay holds the socket)

A ``ProtocolError`` or ``EnvelopeError`` is the receiving side's verdict on what a peer sent: it
is sent back (an ``error`` frame, an HTTP refusal) and never retried as is.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "REJECT_REASONS",
    "AnswerError",
    "EnvelopeError",
    "HotconfError",
    "ProtocolError",
    "RelayError",
]

#: Why a sidecar refuses a push, and the HTTP status it answers with.
REJECT_REASONS: Final[dict[str, int]] = {
    "malformed": 400,  # not the envelope's layout, mistyped fields, bad snapshot
    "unsigned": 401,  # no signature at all
    "bad_signature": 401,  # the signature does not verify with the operator's public key
    "wrong_pod": 403,  # signed for another pod (namespace, name or UID differ)
    "expired": 403,  # the envelope's expiry has passed
    "replayed": 409,  # this sequence was already accepted
    "stale": 409,  # an envelope with a higher sequence was already accepted
    "gone": 410,  # an API version this sidecar no longer serves (see docs/protocol.md)
    "too_large": 413,  # the body exceeds envelope.MAX_BODY_BYTES
}


class HotconfError(Exception):
    """Base of every error hotconf raises."""


class ProtocolError(HotconfError):
    """A peer sent something wire protocol v1 does not allow.

    ``code`` is one of :data:`hotconf_wire.protocol.ERROR_CODES` and is what the receiving side
    sends back in its ``error`` frame before it closes the connection.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class EnvelopeError(HotconfError):
    """A push was refused; ``reason`` is a key of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown envelope rejection reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    @property
    def status(self) -> int:
        """The HTTP status the sidecar answers this refusal with."""
        return REJECT_REASONS[self.reason]


class AnswerError(HotconfError):
    """A sidecar's answer does not have the layout of ``docs/protocol.md``; the field is named."""


class RelayError(HotconfError):
    """The relay cannot serve (e.g. another relay already listens on the socket path)."""
