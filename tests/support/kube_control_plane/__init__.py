"""The real Kubernetes control plane for hotconf's tests: etcd and kube-apiserver.

:class:`ControlPlane` runs both binaries (built by ``scripts/build-control-plane``) on loopback;
:class:`AdminClient` speaks JSON over HTTPS to it; the pytest fixtures are in
:mod:`kube_control_plane.pytest_plugin` (``control_plane`` per session, ``kube_namespace`` per
test). See ``docs/architecture.md``, "What the tests run on".
"""

from ._client import AdminClient, ApiError
from ._process import ISSUER, ControlPlane, ControlPlaneError, binaries, missing_binaries

__all__ = [
    "ISSUER",
    "AdminClient",
    "ApiError",
    "ControlPlane",
    "ControlPlaneError",
    "binaries",
    "missing_binaries",
]
