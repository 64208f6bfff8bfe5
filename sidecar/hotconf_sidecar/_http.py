"""The sidecar's HTTP API (aiohttp): push, state, health, readiness and metrics.

Built by :mod:`hotconf_sidecar.__main__` around a :class:`~hotconf_sidecar._sidecar.Sidecar`.

=================  ======================================================================
``POST /v1/push``  a signed envelope; 200 ``applied``/``unchanged`` with per-client verdicts,
                   4xx ``{"error": {"reason", "message"}}``, 503 while starting or stopping
``GET /v1/state``  held revision and sequence per ConfigMap and each client's verdict
``GET /healthz``   200 while the process serves HTTP
``GET /readyz``    200 once the state is loaded and the relay listens, else 503
``GET /metrics``   Prometheus text format
=================  ======================================================================

The body size limit is checked on ``Content-Length`` before a byte of the body is read, and
again while reading a chunked body; a 413 closes the connection instead of draining the rest.
No input makes a handler raise: anything unexpected is logged and answered 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from aiohttp import web

from hotconf.envelope import MAX_BODY_BYTES, EnvelopeError
from hotconf_sidecar._metrics import CONTENT_TYPE
from hotconf_sidecar._sidecar import Sidecar, Unavailable
from hotconf_sidecar._store import StoreError

__all__ = ["make_app"]

logger: Final = logging.getLogger("hotconf_sidecar.http")

_SIDECAR: Final = web.AppKey("sidecar", Sidecar)


def _json(status: int, body: dict[str, Any], *, close: bool = False) -> web.Response:
    response = web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
    )
    if close:
        response.force_close()
    return response


def _error(status: int, reason: str, message: str, *, close: bool = False) -> web.Response:
    return _json(status, {"error": {"reason": reason, "message": message}}, close=close)


def _too_large(sidecar: Sidecar, size: str) -> web.Response:
    error = EnvelopeError("too_large", f"push body of {size} bytes exceeds {MAX_BODY_BYTES}")
    sidecar.metrics.rejected.labels(error.reason).inc()
    logger.warning("push rejected: %s", error)
    return _json(error.status, error.to_json(), close=True)


async def _push(request: web.Request) -> web.Response:
    sidecar = request.app[_SIDECAR]
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return _too_large(sidecar, str(length))
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(sidecar, "more than that")
    try:
        answer = await sidecar.push(body)
    except EnvelopeError as exc:
        return _json(exc.status, exc.to_json())
    except Unavailable as exc:
        sidecar.metrics.rejected.labels("unavailable").inc()
        return _error(503, "unavailable", str(exc))
    except StoreError as exc:
        sidecar.metrics.rejected.labels("internal").inc()
        logger.error("push failed: %s", exc)
        return _error(500, "internal", str(exc))
    except Exception:
        sidecar.metrics.rejected.labels("internal").inc()
        logger.exception("push failed on an unexpected error")
        return _error(500, "internal", "the sidecar failed on this push; see its log")
    return _json(200, answer)


async def _state(request: web.Request) -> web.Response:
    return _json(200, request.app[_SIDECAR].state())


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    sidecar = request.app[_SIDECAR]
    if sidecar.ready:
        return web.Response(text="ready\n")
    return web.Response(status=503, text=f"{sidecar.phase.value}\n")


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[_SIDECAR].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def make_app(sidecar: Sidecar) -> web.Application:
    """The aiohttp application serving ``sidecar``."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_SIDECAR] = sidecar
    app.router.add_post("/v1/push", _push)
    app.router.add_get("/v1/state", _state)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app
