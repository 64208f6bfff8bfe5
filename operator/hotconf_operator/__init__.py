"""hotconf-operator: watches ConfigMaps and rolls each revision out to subscribed pods.

Its public surface is its two console scripts, ``hotconf-operator``
(:func:`hotconf_operator.__main__.main`) and ``kubectl-hotconf`` (``hotconf status``,
:func:`hotconf_operator._status_command.main`); every module here is private.
"""

__all__: list[str] = []
