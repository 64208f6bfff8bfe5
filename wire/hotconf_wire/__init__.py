"""hotconf_wire: the wire every part of hotconf speaks, with the standard library alone.

The operator, the sidecar and the application library (``hotconf``) all build on these public
modules, so that the two ends of each link cannot drift apart; nothing here imports any of them
or any package outside the standard library (checked by ``.importlinter``).

=======================  ========================================================================
:mod:`.errors`           the root of the exception tree (``HotconfError``) and the wire's errors
:mod:`.protocol`         wire protocol v1: frames between a relay and application processes
:mod:`.envelope`         envelope v2: the signed push from the operator to a sidecar
:mod:`.answers`          the sidecar's answers: push outcome, pod state, refusal
:mod:`.relay`            the relay server, used by the sidecar, ``hotconf dev`` and ``testing``
:mod:`.settings`         settings declared once (flag, env var, default, help, parser); one rule
                         for booleans and log levels in every part
=======================  ========================================================================

Specified in ``docs/protocol.md``.

``__version__`` is the installed distribution's version, read from its metadata: ``version`` in
pyproject.toml is the one place it is written. Every part re-exports this one (the sidecar may
not import ``hotconf``), and a test checks the chart's ``appVersion`` against it.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

try:
    __version__ = _distribution_version("hotconf")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__: list[str] = []
