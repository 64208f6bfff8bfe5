"""hotconf-sidecar: verifies signed pushes from the operator and relays them to the pod.

Its only public surface is the console script ``hotconf-sidecar``
(:func:`hotconf_sidecar.__main__.main`); every module here is private.
"""

__all__: list[str] = []
