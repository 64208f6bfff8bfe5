"""HTTP to the sidecars: ``POST /v2/push`` and ``GET /v2/state``, with retries and a bound.

One :class:`Pusher` per operator process, created by ``__main__`` and used through
``_delivery.Deliverer`` (as its ``SidecarApi``) by ``_rollout`` and ``_reconcile``. It sends
over :class:`~hotconf_operator._sidecar_http.SidecarHttp` (keep-alive connections reused per
sidecar), bounds the requests in flight with a semaphore, gives each attempt a timeout, and
retries connection errors, timeouts and 5xx answers with exponential backoff and full jitter. A
4xx answer is the sidecar's verdict on the envelope and is raised at once as
:class:`PushRefused`; exhausted retries raise :class:`PodUnreachable`. Answers are decoded into
the wire's models (:mod:`hotconf_wire.answers`); one that does not parse is retried like a 5xx.
:meth:`Pusher.probe` is one short state read without retries, for pods that did not answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from hotconf_operator._errors import PodUnreachable, PushRefused
from hotconf_operator._index import PodTarget
from hotconf_operator._settings import PushConfig
from hotconf_operator._sidecar_http import Answer, SidecarHttp
from hotconf_operator._signing import SignedPush
from hotconf_wire.answers import PodState, PushAnswer, Refusal
from hotconf_wire.envelope import PUSH_PATH, SIGNATURE_HEADER, STATE_PATH
from hotconf_wire.errors import AnswerError

__all__ = ["Pusher"]

T = TypeVar("T")

_JSON: Final = ("Content-Type", "application/json")


class _Retry(Exception):
    """An attempt failed in a way worth another try."""


class Pusher:
    """Pushes envelopes to sidecars and reads their state. ``aclose()`` when done."""

    def __init__(self, config: PushConfig, *, max_idle: int = 512) -> None:
        """``max_idle``: connections kept open to sidecars between requests (``__main__``
        sets half the open files limit)."""
        self._config = config
        self._semaphore = asyncio.Semaphore(config.concurrency)
        self._http = SidecarHttp(idle_timeout=60.0, max_idle=max_idle)

    async def aclose(self) -> None:
        await self._http.aclose()

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
            except (TimeoutError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise PodUnreachable(
            f"{what} to pod {target.namespace}/{target.name} at {target.base_url} failed "
            f"{self._config.attempts} times; last: {last}"
        )

    @staticmethod
    def _read(answer: Answer) -> bytes:
        """The body of a 2xx answer; raise PushRefused for a 4xx one, retry anything else."""
        status, raw = answer.status, answer.body
        if status >= 500:
            raise _Retry(f"HTTP {status}")
        if status >= 400:
            try:
                refusal = Refusal.decode(raw)
            except AnswerError:
                refusal = Refusal(f"http_{status}", raw[:200].decode(errors="replace"))
            raise PushRefused(refusal.reason, refusal.message, status=status)
        if status != 200:
            raise _Retry(f"HTTP {status}, not 200")
        return raw

    async def push(self, target: PodTarget, signed: SignedPush) -> PushAnswer:
        """POST the envelope; the sidecar's 200 answer, or PushRefused / PodUnreachable."""
        headers = (_JSON, (SIGNATURE_HEADER, signed.signature))
        http, timeout = self._http, self._config.timeout

        async def attempt() -> PushAnswer:
            answer = await http.request(
                target.ip, target.port, "POST", PUSH_PATH,
                headers=headers, body=signed.body, within=timeout,
            )  # fmt: skip
            return _decoded(PushAnswer.decode, self._read(answer))

        return await self._with_retries(target, "push", attempt)

    async def _state(self, target: PodTarget, within: float) -> PodState:
        answer = await self._http.request(target.ip, target.port, "GET", STATE_PATH, within=within)
        return _decoded(PodState.decode, self._read(answer))

    async def state(self, target: PodTarget) -> PodState:
        """GET /v2/state: which revision of each ConfigMap the pod holds."""
        timeout = self._config.timeout
        return await self._with_retries(target, "state read", lambda: self._state(target, timeout))

    async def probe(self, target: PodTarget, *, within: float) -> PodState:
        """One ``GET /v2/state`` of at most ``within`` seconds, not retried: whether a pod that
        did not answer is back (``_reconcile`` follows such pods); raises PodUnreachable."""
        try:
            async with self._semaphore:
                return await self._state(target, within)
        except (_Retry, TimeoutError, OSError) as exc:
            raise PodUnreachable(
                f"probe of pod {target.namespace}/{target.name} at {target.base_url}: "
                f"{type(exc).__name__}: {exc}".rstrip(": ")
            ) from exc


def _decoded(decode: Callable[[bytes], T], raw: bytes) -> T:
    try:
        return decode(raw)
    except AnswerError as exc:
        raise _Retry(f"the sidecar's answer does not parse: {exc}") from exc
