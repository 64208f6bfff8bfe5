"""The sidecar's exception tree; every error hotconf-sidecar raises on purpose is one of these.

::

    SidecarError                 (hotconf_wire.errors.HotconfError)
    ├── SettingsError            a flag or environment variable is missing or invalid: exit 2
    ├── PublicKeyError           the operator's key is not an Ed25519 public key in PEM: exit 1
    ├── StoreError               the state directory cannot be read or written (OSError chained):
    │                            at start-up exit 1; for a push answer 500, nothing changes
    └── Unavailable              the sidecar is starting or draining: answer 503, retry later

What the sidecar refuses is not one of these: a bad push is the wire's
:class:`hotconf_wire.errors.EnvelopeError` (``.reason``, ``.status``), answered to the operator
as its verdict and never retried as is. The lowest layer of the sidecar: it imports nothing of
it, and every other module may raise these.
"""

from __future__ import annotations

from hotconf_wire.errors import HotconfError

__all__ = ["PublicKeyError", "SettingsError", "SidecarError", "StoreError", "Unavailable"]


class SidecarError(HotconfError):
    """Base of the sidecar's own errors."""


class SettingsError(SidecarError):
    """A setting is missing or invalid; the message names the flag, the variable and the fix."""


class PublicKeyError(SidecarError):
    """The configured operator key is not an Ed25519 public key in PEM."""


class StoreError(SidecarError):
    """The state directory cannot be used; the push is answered 500 and nothing changes."""


class Unavailable(SidecarError):
    """The sidecar does not take pushes now (it is starting or stopping)."""
