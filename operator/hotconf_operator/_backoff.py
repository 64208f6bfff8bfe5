"""The delays between kopf's attempts at a failing API request: short, capped and jittered.

Used by :func:`hotconf_operator._handlers.configure` as kopf's
``settings.networking.error_backoffs``. kopf retries a failed API request (connection refused or
reset, timeout, 5xx, 429, 403) after each delay of that sequence in turn and fails the request
when the sequence is exhausted; a watch then starts over at once with a fresh sequence. So these
delays, not the API server, decide how soon the operator sees changes again after an API outage:
kopf's default (1, 1, 2, 3, 5, 8, 13, 21 s) leaves it blind for 2 s after a 5 s outage, up to
13 s after a longer one.

:class:`ApiRetryDelays` is an iterable that kopf iterates once per failing request, so each
request draws its own delays: they double from ``first`` up to ``most``, and each is drawn
uniformly between half its bound and its bound ("equal jitter"). Hence

* after the API is back, the next attempt comes within ``most`` seconds;
* no storm: one request never retries more often than every ``first / 2`` seconds at first and
  every ``most / 2`` seconds after that, and the jitter spreads replicas and shards whose
  watches broke at the same moment. An API server that answers 429 with ``Retry-After`` is
  obeyed when it asks for longer (kopf's rule);
* a request that is not a watch (a peering record's renewal, say) keeps trying for between
  ``budget / 2`` and ``budget`` seconds before it fails, as long as with kopf's default (54 s).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["ApiRetryDelays"]


class ApiRetryDelays:
    """Delays in seconds doubling from ``first`` to ``most``, each drawn in [bound/2, bound],
    as many as fit in ``budget`` seconds of bounds; a fresh draw on each iteration."""

    def __init__(
        self,
        *,
        first: float,
        most: float,
        budget: float,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < first <= most <= budget:
            raise ValueError(
                f"API retry delays need 0 < first <= most <= budget, got first={first!r}, "
                f"most={most!r}, budget={budget!r}"
            )
        bounds: list[float] = []
        bound, total = first, 0.0
        while total + bound <= budget:
            bounds.append(bound)
            total += bound
            bound = min(bound * 2, most)
        self.first, self.most, self.budget = first, most, budget
        #: The upper bound of each delay, in order.
        self.bounds = tuple(bounds)
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return len(self.bounds)

    def __iter__(self) -> Iterator[float]:
        for bound in self.bounds:
            yield self._rng.uniform(bound / 2, bound)

    def __repr__(self) -> str:
        return (
            f"ApiRetryDelays(first={self.first:g}, most={self.most:g}, budget={self.budget:g}: "
            f"{len(self)} retries)"
        )
