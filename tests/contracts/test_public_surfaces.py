"""Every public module of hotconf says what it exports, and exports exactly that.

Walks the four packages (the wire, the application library, the sidecar and the operator) as
anyio's ``tests/test_all_attributes.py`` does, instead of a list typed a second time: each
public module (no ``_`` in its dotted path, ``__main__`` aside) has an ``__all__``; every name
in it exists; every public class or function defined in that module is in it; and a package's
``__init__`` re-exports only what its private modules (or the wire, for the root of the error
tree) define. A name added to a module and forgotten in ``__all__`` fails here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

PACKAGES = ("hotconf_wire", "hotconf", "hotconf_sidecar", "hotconf_operator")


def _walk(package: str) -> list[str]:
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        names.append(info.name)
    return names


def _is_public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split(".")[1:])


ALL_MODULES = [m for p in PACKAGES for m in _walk(p)]
PUBLIC_MODULES = [m for m in ALL_MODULES if _is_public(m)]


def test_the_walk_finds_the_modules_it_should() -> None:
    """A guard for the walk itself: it sees private and public modules of every package."""
    assert {"hotconf_wire.protocol", "hotconf_wire.envelope", "hotconf.testing"} <= set(
        PUBLIC_MODULES
    )
    assert {"hotconf._runners._thread", "hotconf_operator._rollout"} <= set(ALL_MODULES)
    assert "hotconf._runners._thread" not in PUBLIC_MODULES


def _defined_here(module: ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


@pytest.mark.parametrize("name", ALL_MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        assert not _is_public(name), f"public module {name} has no __all__"
        return
    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    for attribute in exported:
        assert hasattr(module, attribute), f"{name}.__all__ names {attribute!r}, which is missing"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_definitions_are_exported(name: str) -> None:
    module = importlib.import_module(name)
    missing = _defined_here(module) - set(module.__all__)
    assert not missing, f"{name} defines public {sorted(missing)} but leaves them out of __all__"


@pytest.mark.parametrize("package", PACKAGES)
def test_package_reexports_come_from_its_private_modules(package: str) -> None:
    module = importlib.import_module(package)
    for attribute in module.__all__:
        value = getattr(module, attribute)
        origin = getattr(value, "__module__", None)
        if origin is None or origin == "typing":  # constants and type aliases
            continue
        assert origin.startswith((f"{package}._", "hotconf_wire.errors")), (attribute, origin)


def test_the_application_library_exports_its_runners_and_errors() -> None:
    import hotconf

    assert {"run", "Config", "ThreadRunner", "AsyncRunner", "ProcessRunner"} <= set(hotconf.__all__)
    assert {"HotconfError", "ConfigRejected", "RelayUnavailable"} <= set(hotconf.__all__)
