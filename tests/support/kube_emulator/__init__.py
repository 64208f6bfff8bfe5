"""An emulated Kubernetes API server for hotconf's tests and benchmarks, built on kmock 0.8.

Public surface (everything else is private):

- ``KubeEmulator``: the in-memory API (a ``kmock.KubernetesEmulator`` subclass);
- ``EmulatorServer``: it served over HTTP in this process (``async with``);
- ``EmulatorProcess``: it served by a child process (``with``), for kubectl, kopf, operators;
- ``kubeconfig_text`` / ``write_kubeconfig``: a kubeconfig pointing at a URL;
- ``Store``, ``Kind``: the objects, for assertions (``emulator.store.get(kind, ns, name)``);
- the ``ApiError`` tree: the ``Status`` errors it answers with.

Fixtures: ``pytest_plugin`` (load with ``pytest_plugins = ["kube_emulator.pytest_plugin"]``).
See README.md in this folder for what it fixes in kmock and how to run it.
"""

from ._emulator import KubeEmulator
from ._errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    Gone,
    Invalid,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
)
from ._process import EmulatorProcess, EmulatorProcessError
from ._server import (
    EmulatorServer,
    ServerState,
    ServerStateError,
    kubeconfig_text,
    write_kubeconfig,
)
from ._store import Kind, Store

__all__ = [
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Conflict",
    "EmulatorProcess",
    "EmulatorProcessError",
    "EmulatorServer",
    "Gone",
    "Invalid",
    "Kind",
    "KubeEmulator",
    "MethodNotAllowed",
    "NotFound",
    "ServerState",
    "ServerStateError",
    "Store",
    "UnsupportedMediaType",
    "kubeconfig_text",
    "write_kubeconfig",
]
