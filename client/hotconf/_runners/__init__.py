"""The runners: drain-and-restart supervisors for a task, one per mode, sharing one base.

Called by :func:`hotconf.run` and re-exported from :mod:`hotconf`. ``_base`` holds the shared
vocabulary (states, events, options, the decision on each arriving revision), ``_blocking`` the
plain supervisor loop of the thread and process modes, ``_asyncio`` its mirror for coroutines;
``_thread`` adds thread mode's chained fast path to the steps it overrides.
"""
