"""The sidecar's answers round-trip through their one encoder and one decoder: a push answer, a
pod state and a refusal decode to the models they were encoded from; a decoder ignores fields it
does not know and names the first field that is missing or mistyped."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotconf_wire.answers import (
    ClientVerdict,
    HeldConfig,
    PodState,
    PushAnswer,
    Refusal,
)
from hotconf_wire.envelope import PodRef
from hotconf_wire.errors import AnswerError, EnvelopeError
from hotconf_wire.protocol import ConfigMapRef

verdicts = st.builds(
    ClientVerdict,
    id=st.text(max_size=8),
    client=st.text(max_size=8),
    pid=st.none() | st.integers(min_value=0, max_value=2**31),
    revision=st.text(max_size=12),
    result=st.sampled_from(["ack", "nack", "timeout", "superseded", "gone", "pending"]),
    message=st.text(max_size=20),
)


@given(
    status=st.sampled_from(["applied", "unchanged"]),
    sequence=st.integers(min_value=0, max_value=2**63),
    clients=st.lists(verdicts, max_size=3).map(tuple),
)
def test_push_answer_round_trips(status: str, sequence: int, clients: tuple[ClientVerdict]) -> None:
    answer = PushAnswer(status, "sha256:ab", sequence, clients)  # type: ignore[arg-type]
    assert PushAnswer.decode(answer.encode()) == answer


@given(held=st.lists(st.tuples(st.sampled_from(["a", "b"]), st.lists(verdicts, max_size=2))))
def test_pod_state_round_trips(held: list[tuple[str, list[ClientVerdict]]]) -> None:
    state = PodState(
        PodRef("shop", "web-0", "uid-0"),
        tuple(
            HeldConfig(ConfigMapRef("shop", name), "sha256:ab", n, tuple(clients))
            for n, (name, clients) in enumerate(held)
        ),
    )
    assert PodState.decode(state.encode()) == state


def test_pod_state_finds_what_the_pod_holds_of_a_configmap() -> None:
    held = HeldConfig(ConfigMapRef("shop", "app"), "sha256:ab", 3)
    state = PodState(PodRef("shop", "web-0", "uid-0"), (held,))
    assert state.held(ConfigMapRef("shop", "app")) is held
    assert state.held(ConfigMapRef("shop", "other")) is None
    assert state.held(ConfigMapRef("other", "app")) is None


def test_decoders_ignore_fields_they_do_not_know() -> None:
    verdict = ClientVerdict("c1", "worker", 12, "sha256:ab", "ack")
    obj = json.loads(PushAnswer("applied", "sha256:ab", 1, (verdict,)).encode())
    obj["future"] = {"x": 1}
    obj["clients"][0]["latency"] = 0.1
    assert PushAnswer.decode(json.dumps(obj).encode()).clients == (verdict,)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"status": "done", "revision": "r", "sequence": 1, "clients": []}', "'done'"),
        (b'{"status": "applied", "revision": "r", "sequence": "1", "clients": []}', "'sequence'"),
        (b'{"status": "applied", "revision": "r", "sequence": true, "clients": []}', "'sequence'"),
        (b'{"status": "applied", "revision": "r", "sequence": 1, "clients": [1]}', "clients[0]"),
        (
            b'{"status": "applied", "revision": "r", "sequence": 1, "clients": [{"id": "c",'
            b' "client": "w", "pid": null, "revision": "r", "result": "maybe", "message": ""}]}',
            "'maybe'",
        ),
    ],
)
def test_malformed_push_answers_name_the_field(body: bytes, words: str) -> None:
    with pytest.raises(AnswerError) as info:
        PushAnswer.decode(body)
    assert words in str(info.value)


def test_refusal_round_trips_and_keeps_reasons_it_does_not_know() -> None:
    refusal = Refusal.of(EnvelopeError("stale", "sequence 1 is older than 2"))
    assert Refusal.decode(refusal.encode()) == refusal and refusal.known
    future = Refusal.decode(b'{"error": {"reason": "quota", "message": "later"}}')
    assert future == Refusal("quota", "later") and not future.known


def test_a_verdict_names_its_client_for_people() -> None:
    assert ClientVerdict("c1", "worker", 12, "r", "ack").who == "worker (pid 12)"
    assert ClientVerdict("adapter:files", "adapter:files", None, "r", "ack").who == "adapter:files"
