"""HTTP to the sidecars: ``POST /v1/push`` and ``GET /v1/state``, with retries and a bound.

One :class:`Pusher` per operator process, created by ``__main__`` and shared by ``_rollout``
and ``_reconcile``. It keeps one aiohttp session (keep-alive connections reused per sidecar),
bounds the requests in flight with a semaphore, gives each attempt a timeout, and retries
connection errors, timeouts and 5xx answers with exponential backoff and full jitter. A 4xx
answer is the sidecar's verdict on the envelope and is raised at once as
:class:`PushRefused`; exhausted retries raise :class:`PodUnreachable`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from hotconf_operator._errors import PodUnreachable, PushRefused
from hotconf_operator._index import PodTarget
from hotconf_operator._settings import PushConfig

__all__ = ["Pusher"]

T = TypeVar("T")

#: Sidecar addresses whose parsed URLs are kept (the set is cleared when it is full).
_URLS_KEPT = 20_000


class _Retry(Exception):
    """An attempt failed in a way worth another try."""


class Pusher:
    """Pushes envelopes to sidecars and reads their state. ``aclose()`` when done."""

    def __init__(self, config: PushConfig) -> None:
        self._config = config
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self._session: aiohttp.ClientSession | None = None
        # (ip, port) -> URLs of /v1/push and /v1/state: parsing and checking a URL's host costs
        # more than the rest of building the request, and yarl's own cache holds 256 hosts
        self._urls: dict[tuple[str, int], tuple[URL, URL]] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._config.concurrency, keepalive_timeout=60, use_dns_cache=False
                ),
                # one timeout object for every attempt; aiohttp arms a timer per request from it
                timeout=aiohttp.ClientTimeout(total=self._config.timeout),
                skip_auto_headers=("User-Agent",),
                # set once here, not per request (aiohttp merges per-request headers each time);
                # harmless on GET /v1/state
                headers={"Content-Type": "application/json"},
            )
        return self._session

    def _urls_of(self, target: PodTarget) -> tuple[URL, URL]:
        key = (target.ip, target.port)
        urls = self._urls.get(key)
        if urls is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            base = URL(target.base_url)
            urls = self._urls[key] = (base.with_path("/v1/push"), base.with_path("/v1/state"))
        return urls

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _with_retries(
        self, target: PodTarget, what: str, attempt_fn: Callable[[], Awaitable[T]]
    ) -> T:
        last: str = ""
        for attempt in range(self._config.attempts):
            if attempt:
                cap = min(self._config.backoff_max, self._config.backoff_base * 2**attempt)
                await asyncio.sleep(random.uniform(0, cap))
            try:
                async with self._semaphore:
                    return await attempt_fn()
            except _Retry as exc:
                last = str(exc)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise PodUnreachable(
            f"{what} to pod {target.namespace}/{target.name} at {target.base_url} failed "
            f"{self._config.attempts} times; last: {last}"
        )

    @staticmethod
    async def _read(resp: aiohttp.ClientResponse) -> Any:
        raw = await resp.read()
        if resp.status >= 500:
            raise _Retry(f"HTTP {resp.status}")
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if resp.status >= 400:
            err = obj.get("error") if isinstance(obj, dict) else None
            if not isinstance(err, dict):
                err = {}
            raise PushRefused(
                str(err.get("reason") or f"http_{resp.status}"),
                str(err.get("message") or raw[:200].decode(errors="replace")),
                status=resp.status,
            )
        if not isinstance(obj, dict):
            raise _Retry(f"HTTP {resp.status} with a body that is not a JSON object")
        return obj

    async def push(self, target: PodTarget, body: bytes) -> dict[str, Any]:
        """POST the envelope; the sidecar's 200 answer, or PushRefused / PodUnreachable."""
        session = self._get_session()
        url = self._urls_of(target)[0]

        async def attempt() -> dict[str, Any]:
            async with session.post(url, data=body) as resp:
                result: dict[str, Any] = await self._read(resp)
                return result

        return await self._with_retries(target, "push", attempt)

    async def state(self, target: PodTarget) -> dict[str, Any]:
        """GET /v1/state: which revision of each ConfigMap the pod holds."""
        session = self._get_session()
        url = self._urls_of(target)[1]

        async def attempt() -> dict[str, Any]:
            async with session.get(url) as resp:
                result: dict[str, Any] = await self._read(resp)
                return result

        return await self._with_retries(target, "state read", attempt)
