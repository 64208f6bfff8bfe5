"""Shared pytest setup: the real control plane (tests/support/kube_control_plane) and the
emulated Kubernetes API (tests/support/kube_emulator), each as fixtures."""

pytest_plugins = ["kube_control_plane.pytest_plugin", "kube_emulator.pytest_plugin"]
