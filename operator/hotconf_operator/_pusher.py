"""HTTP to the sidecars: ``POST /v2/push`` and ``GET /v2/state``, with retries and a bound.

One :class:`Pusher` per operator process, created by ``__main__`` and used through
``_delivery.Deliverer`` (as its ``SidecarApi``) by ``_rollout`` and ``_reconcile``. It keeps
one aiohttp session (keep-alive connections reused per sidecar), bounds the requests in flight
with a semaphore, gives each attempt a timeout, and retries connection errors, timeouts and
5xx answers with exponential backoff and full jitter. A 4xx
answer is the sidecar's verdict on the envelope and is raised at once as
:class:`PushRefused`; exhausted retries raise :class:`PodUnreachable`. Answers are decoded into
the wire's models (:mod:`hotconf_wire.answers`); one that does not parse is retried like a 5xx.
:meth:`Pusher.probe` is one short state read without retries, for pods that did not answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from yarl import URL

from hotconf_operator._errors import PodUnreachable, PushRefused
from hotconf_operator._index import PodTarget
from hotconf_operator._settings import PushConfig
from hotconf_operator._signing import SignedPush
from hotconf_wire.answers import PodState, PushAnswer, Refusal
from hotconf_wire.envelope import PUSH_PATH, SIGNATURE_HEADER, STATE_PATH
from hotconf_wire.errors import AnswerError

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
        # (ip, port) -> URLs of /v2/push and /v2/state: parsing and checking a URL's host costs
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
                # harmless on GET /v2/state
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
            urls = self._urls[key] = (base.with_path(PUSH_PATH), base.with_path(STATE_PATH))
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
    async def _read(resp: aiohttp.ClientResponse) -> bytes:
        """The body of a 2xx answer; raise PushRefused for a 4xx one, retry anything else."""
        raw = await resp.read()
        if resp.status >= 500:
            raise _Retry(f"HTTP {resp.status}")
        if resp.status >= 400:
            try:
                refusal = Refusal.decode(raw)
            except AnswerError:
                refusal = Refusal(f"http_{resp.status}", raw[:200].decode(errors="replace"))
            raise PushRefused(refusal.reason, refusal.message, status=resp.status)
        if resp.status != 200:
            raise _Retry(f"HTTP {resp.status}, not 200")
        return raw

    async def push(self, target: PodTarget, signed: SignedPush) -> PushAnswer:
        """POST the envelope; the sidecar's 200 answer, or PushRefused / PodUnreachable."""
        session = self._get_session()
        url = self._urls_of(target)[0]
        headers = {SIGNATURE_HEADER: signed.signature}

        async def attempt() -> PushAnswer:
            async with session.post(url, data=signed.body, headers=headers) as resp:
                return _decoded(PushAnswer.decode, await self._read(resp))

        return await self._with_retries(target, "push", attempt)

    async def state(self, target: PodTarget) -> PodState:
        """GET /v2/state: which revision of each ConfigMap the pod holds."""
        session = self._get_session()
        url = self._urls_of(target)[1]

        async def attempt() -> PodState:
            async with session.get(url) as resp:
                return _decoded(PodState.decode, await self._read(resp))

        return await self._with_retries(target, "state read", attempt)

    async def probe(self, target: PodTarget, *, within: float) -> PodState:
        """One ``GET /v2/state`` of at most ``within`` seconds, not retried: whether a pod that
        did not answer is back (``_reconcile`` follows such pods); raises PodUnreachable."""
        session = self._get_session()
        url = self._urls_of(target)[1]
        try:
            async with self._semaphore, session.get(url, timeout=_timeout(within)) as resp:
                return _decoded(PodState.decode, await self._read(resp))
        except (_Retry, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise PodUnreachable(
                f"probe of pod {target.namespace}/{target.name} at {target.base_url}: "
                f"{type(exc).__name__}: {exc}".rstrip(": ")
            ) from exc


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


def _decoded(decode: Callable[[bytes], T], raw: bytes) -> T:
    try:
        return decode(raw)
    except AnswerError as exc:
        raise _Retry(f"the sidecar's answer does not parse: {exc}") from exc
