"""hotconf-sidecar: verifies signed pushes from the operator and relays them to the pod.

Its only public surface is the console script ``hotconf-sidecar``
(:func:`hotconf_sidecar.__main__.main`); every module here is private.
``__version__`` is hotconf's one version (``hotconf_wire.__version__``).
"""

from hotconf_wire import __version__ as __version__

__all__: list[str] = []
