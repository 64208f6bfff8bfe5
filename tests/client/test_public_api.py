"""The public surface of `hotconf` is exactly what `__all__` lists, and every name in it exists."""

from __future__ import annotations

import hotconf


def test_all_lists_the_public_surface() -> None:
    assert set(hotconf.__all__) == {
        "EXIT_STUCK",
        "AsyncRunner",
        "Config",
        "ConfigError",
        "ConfigParseError",
        "ConfigRejected",
        "FirstConfigTimeout",
        "HotconfError",
        "Mode",
        "ProcessRunner",
        "ProtocolError",
        "RelayUnavailable",
        "ReloadEvent",
        "RunnerError",
        "RunnerOptions",
        "RunnerState",
        "ThreadRunner",
        "arepeat",
        "repeat",
        "run",
    }
    assert len(hotconf.__all__) == len(set(hotconf.__all__))
    for name in hotconf.__all__:
        assert hasattr(hotconf, name), name


def test_public_names_are_defined_in_private_modules() -> None:
    for name in hotconf.__all__:
        module = getattr(getattr(hotconf, name), "__module__", "hotconf._")
        assert module.startswith("hotconf._") or module == "typing", (name, module)
