"""A pod's verdict on one revision of one ConfigMap: :class:`Verdict` and :class:`PodOutcome`.

The vocabulary shared by every module that handles per-pod results: ``_delivery`` produces a
:class:`PodOutcome` for each push or state read, ``_state`` keeps them per ConfigMap, and
``_status`` counts them into the status annotation. :func:`verdict_of_clients` turns the clients'
answers a sidecar relays (:class:`hotconf_wire.answers.ClientVerdict`) into the pod's verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from hotconf_operator._index import PodTarget
from hotconf_wire.answers import ClientVerdict

__all__ = ["NO_APPLICATION", "PodOutcome", "Verdict", "verdict_of_clients"]

#: Why a pod counts as held, not applied.
NO_APPLICATION = "no application connected; the sidecar holds it for the next one to connect"


class Verdict(StrEnum):
    """A pod's verdict on one revision, from its clients' answers."""

    APPLIED = "applied"  # every client ACKed it
    HELD = "held"  # the sidecar holds it, and no application is connected to take it
    REJECTED = "rejected"  # a client NACKed it, or the sidecar refused the envelope
    PENDING = "pending"  # no verdict yet: the pod did not answer, or a client did not


@dataclass(frozen=True, slots=True)
class PodOutcome:
    """One pod's answer to one revision."""

    pod: PodTarget
    revision: str
    verdict: Verdict
    message: str = ""
    #: The revision the pod's application runs, as far as known ("": not known): this one once
    #: applied, else the last one the operator saw it apply.
    runs: str = ""


def verdict_of_clients(clients: Iterable[ClientVerdict]) -> tuple[Verdict, str]:
    """Any NACK rejects; else any other answer than an ACK leaves it pending; else applied by
    every client; with no client at all, held by the sidecar (an application that exited, or
    has not connected yet, gets it when it connects)."""
    pending = ""
    clients = tuple(clients)
    if not clients:
        return Verdict.HELD, NO_APPLICATION
    for client in clients:
        if client.result == "nack":
            return Verdict.REJECTED, f"{client.who}: {client.message}"
        if client.result != "ack" and not pending:
            pending = f"{client.who} answered {client.result}"
    if pending:
        return Verdict.PENDING, pending
    return Verdict.APPLIED, ""
