"""The operator retries a failing API request after short, capped, jittered delays instead of
kopf's default (1, 1, 2, 3, 5, 8 ... s): each delay lies between half its bound and its bound,
the bounds double from 0.1 s to ``--api-retry-max`` (0.5 s by default), every request draws its
own, a request keeps trying for as long as with kopf's default, and ``configure`` hands them to
kopf as ``settings.networking.error_backoffs``."""

from __future__ import annotations

import random

import kopf
import pytest

from hotconf_operator._backoff import ApiRetryDelays
from hotconf_operator._errors import SettingsError
from hotconf_operator._handlers import configure
from hotconf_operator._settings import API_RETRY_MAX, parse_settings

KEY = ["--signing-key-file", "key.pem"]


def test_bounds_double_up_to_the_cap_and_fill_the_budget() -> None:
    delays = ApiRetryDelays(first=0.1, most=0.5, budget=60)
    assert delays.bounds[:4] == (0.1, 0.2, 0.4, 0.5)
    assert set(delays.bounds[3:]) == {0.5}
    assert len(delays) == len(list(delays)) == len(delays.bounds)
    assert 59.5 < sum(delays.bounds) <= 60  # kopf's default keeps trying for 54 s


def test_each_delay_is_jittered_within_half_its_bound_and_its_bound() -> None:
    delays = ApiRetryDelays(first=0.1, most=0.5, budget=60, rng=random.Random(7))
    draws = [list(delays) for _ in range(50)]
    for draw in draws:
        assert all(b / 2 <= d <= b for d, b in zip(draw, delays.bounds, strict=True))
    # Every iteration (kopf iterates once per failing request) draws anew: no two requests,
    # replicas or shards retry in lockstep.
    assert len({tuple(draw) for draw in draws}) == len(draws)
    assert len({draw[-1] for draw in draws}) == len(draws)


def test_inconsistent_bounds_are_refused_with_their_values() -> None:
    with pytest.raises(ValueError, match=r"first=1.*most=0.5"):
        ApiRetryDelays(first=1, most=0.5, budget=60)


def test_configure_gives_kopf_the_delays_of_the_setting() -> None:
    assert API_RETRY_MAX.default == 0.5
    settings = kopf.OperatorSettings()
    configure(settings, parse_settings([*KEY, "--api-retry-max", "2"], {}))
    delays = settings.networking.error_backoffs
    assert isinstance(delays, ApiRetryDelays)
    assert max(delays.bounds) == 2.0 and delays.bounds[0] == 0.1
    settings = kopf.OperatorSettings()
    configure(settings, parse_settings(KEY, {}))
    delays = settings.networking.error_backoffs
    assert isinstance(delays, ApiRetryDelays) and max(delays.bounds) == 0.5


@pytest.mark.parametrize("raw", ["0", "-1", "fast", "61"])
def test_a_bad_api_retry_max_names_the_setting(raw: str) -> None:
    with pytest.raises(SettingsError, match="HOTCONF_API_RETRY_MAX"):
        parse_settings(KEY, {"HOTCONF_API_RETRY_MAX": raw})
