"""kube_emulator's public surface is exactly what its ``__all__`` lists."""

from __future__ import annotations

import kube_emulator


def test_all_lists_the_public_names() -> None:
    assert sorted(kube_emulator.__all__) == [
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
    for name in kube_emulator.__all__:
        assert getattr(kube_emulator, name) is not None
