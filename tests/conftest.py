"""Shared pytest setup: the real control plane (tests/support/kube_control_plane), the chart
installed on it (tests/support/hotconf_e2e/fixtures.py) and the emulated Kubernetes API
(tests/support/kube_emulator) and an OCI registry on loopback (tests/support/oci_registry.py),
each as fixtures; and, for every test, the check that no thread,
child process or asyncio task outlives it (tests/support/leak_checks.py)."""

pytest_plugins = [
    "leak_checks",
    "kube_control_plane.pytest_plugin",
    "hotconf_e2e.fixtures",
    "kube_emulator.pytest_plugin",
    "oci_registry",
]
