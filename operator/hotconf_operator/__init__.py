"""hotconf-operator: watches ConfigMaps and rolls each revision out to subscribed pods.

Its public surface is its two console scripts, ``hotconf-operator``
(:func:`hotconf_operator.__main__.main`) and ``kubectl-hotconf`` (``hotconf status``,
:func:`hotconf_operator._status_command.main`); every module here is private.
``__version__`` is hotconf's one version (``hotconf_wire.__version__``).
"""

from hotconf_wire import __version__ as __version__

__all__: list[str] = []
