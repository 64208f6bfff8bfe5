"""A benchmark's probe of kopf, never used by hotconf itself.

Loaded by Python at start-up when ``bench/kopf_hook`` is on ``PYTHONPATH`` (as
``bench/kopf_cost.py`` puts it): in the operator process only, and only with
``HOTCONF_TRACE_FILE`` set, it wraps kopf's watch stream (``kopf._cogs.clients.api.stream``) so
that every ConfigMap event kopf has read and parsed is traced as the hop ``kopf.received``,
before kopf queues and processes it. The time from there to hotconf's ``operator.event`` is what
kopf's event machinery costs.
"""

from __future__ import annotations

import os
import sys

if sys.argv and sys.argv[0].endswith("hotconf-operator") and os.environ.get("HOTCONF_TRACE_FILE"):
    import base64
    import time
    from collections.abc import AsyncIterator
    from typing import Any

    from kopf._cogs.clients import api

    from hotconf_wire.protocol import compute_revision
    from hotconf_wire.trace import Tracer

    _tracer = Tracer(os.environ["HOTCONF_TRACE_FILE"], proc="kopf")
    _original = api.stream

    async def _traced(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for raw in _original(*args, **kwargs):
            at = time.monotonic()
            obj = raw.get("object") if isinstance(raw, dict) else None
            if isinstance(obj, dict) and obj.get("kind") == "ConfigMap":
                meta = obj.get("metadata") or {}
                binary = {k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()}
                revision = compute_revision(obj.get("data") or {}, binary)
                cm = f"{meta.get('namespace')}/{meta.get('name')}"
                _tracer.mark("kopf.received", cm=cm, rev=revision, at=at)
            yield raw

    api.stream = _traced
