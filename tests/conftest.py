"""Shared pytest setup: the emulated Kubernetes API fixtures (tests/support/kube_emulator)."""

pytest_plugins = ["kube_emulator.pytest_plugin"]
