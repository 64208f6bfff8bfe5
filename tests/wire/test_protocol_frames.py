"""Wire protocol v1 frames: every message round-trips with all its fields (namespace and name
included), every bad frame is a ProtocolError with the right code and a message naming what is
wrong, and the content revision is a hash of the content whatever the order of its keys."""

from __future__ import annotations

import dataclasses
import json
import random
import struct
from collections.abc import Mapping
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotconf_wire import protocol as p
from hotconf_wire.errors import ProtocolError

T = TypeVar("T")

MESSAGES: list[p.Message] = [
    p.Hello(configmaps=(p.ConfigMapRef("default", "app"),), client="worker", pid=42),
    p.Hello(),
    p.Welcome(server="hotconf-sidecar"),
    p.ConfigSnapshot(
        "default", "app", "sha256:abc", {"a.yaml": "x: 1\n", "t": "ünïcode"}, {"b.bin": b"\0\1"}
    ),
    p.Ack("default", "app", "sha256:abc"),
    p.Nack("default", "app", "sha256:abc", "port must be an integer"),
    p.Heartbeat(),
    p.ErrorReply("malformed_frame", "bad"),
]


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def fields(message: p.Message) -> tuple[type, dict[str, object]]:
    """Every field of ``message`` by name, mappings as plain dicts, to compare in full."""
    return type(message), {
        f.name: dict(value) if isinstance(value, Mapping) else value
        for f in dataclasses.fields(message)
        for value in [getattr(message, f.name)]
    }


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: p.Message) -> None:
    (decoded,) = p.FrameDecoder().feed(p.encode(message))
    assert fields(decoded) == fields(message)
    assert decoded == message


NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
KEYS = st.from_regex(r"[-._a-zA-Z0-9]{1,20}", fullmatch=True)


@given(
    namespace=NAMES,
    name=NAMES,
    data=st.dictionaries(KEYS, st.text(max_size=20), max_size=5),
    binary=st.dictionaries(KEYS, st.binary(max_size=20), max_size=5),
)
def test_any_snapshot_round_trips(
    namespace: str, name: str, data: dict[str, str], binary: dict[str, bytes]
) -> None:
    binary = {k: v for k, v in binary.items() if k not in data}  # a key is in one or the other
    message = p.ConfigSnapshot(namespace, name, p.compute_revision(data, binary), data, binary)
    (decoded,) = p.FrameDecoder().feed(p.encode(message))
    assert fields(decoded) == fields(message)


def test_decoder_handles_split_and_joined_frames() -> None:
    stream = b"".join(p.encode(m) for m in MESSAGES)
    decoder = p.FrameDecoder()
    out: list[p.Message] = []
    for i in range(0, len(stream), 7):
        out += decoder.feed(stream[i : i + 7])
    assert [fields(m) for m in out] == [fields(m) for m in MESSAGES]
    assert decoder.pending == 0


def test_decoder_copies_a_partial_frame_out_of_a_reused_buffer() -> None:
    """The application library reads into one buffer it reuses: the bytes of a frame split
    across reads must be kept as they were, not as the buffer holds them after the next read."""
    stream = p.encode(MESSAGES[3])
    buffer = bytearray(len(stream))
    decoder = p.FrameDecoder()
    cut = len(stream) // 2
    buffer[:cut] = stream[:cut]
    assert decoder.feed(memoryview(buffer)[:cut]) == []
    buffer[:] = b"\xff" * len(buffer)  # the next read overwrites the first one's bytes
    rest = len(stream) - cut
    buffer[:rest] = stream[cut:]
    (decoded,) = decoder.feed(memoryview(buffer)[:rest])
    assert fields(decoded) == fields(MESSAGES[3])


def test_deliver_hands_over_every_message_before_a_bad_frame() -> None:
    """The relay acts on each message as it is decoded: an ACK read together with a bad frame
    after it is recorded before the bad frame closes the connection."""
    ack, nack = MESSAGES[4], MESSAGES[5]
    got: list[p.Message] = []
    decoder = p.FrameDecoder()
    with pytest.raises(ProtocolError) as info:
        decoder.deliver(p.encode(ack) + p.encode(nack) + frame(b"{oops"), got.append)
    assert info.value.code == "malformed_frame"
    assert got == [ack, nack]
    got.clear()
    with pytest.raises(ProtocolError) as info:
        p.FrameDecoder().deliver(
            p.encode(ack) + struct.pack(">I", p.MAX_FRAME_BYTES + 1), got.append
        )
    assert info.value.code == "frame_too_large"
    assert got == [ack]


@pytest.mark.parametrize(
    ("cut", "words"),
    [(0, None), (2, "inside a frame header"), (10, "after 6 of ")],
)
def test_eof_inside_a_frame_is_named(cut: int, words: str | None) -> None:
    decoder = p.FrameDecoder()
    stream = p.encode(MESSAGES[4])
    assert decoder.feed(stream + stream[:cut]) == [MESSAGES[4]]
    if words is None:
        decoder.eof()  # ended on a frame boundary: nothing to say
        return
    with pytest.raises(ProtocolError) as info:
        decoder.eof()
    assert info.value.code == "malformed_frame"
    assert words in info.value.message


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (b"\xff\xfe", "malformed_frame", "not UTF-8"),
        (b"{nope", "malformed_frame", "not JSON"),
        (b"[1, 2]", "malformed_frame", "JSON object"),
        (b'{"type": "launch"}', "malformed_frame", "unknown message type"),
        (b'{"type": "hello"}', "malformed_frame", "'version' is missing"),
        (b'{"type": "hello", "version": "1"}', "malformed_frame", "must be an integer"),
        (
            b'{"type": "ack", "namespace": "d", "name": "Bad_Name", "revision": "r"}',
            "malformed_frame",
            "not a ConfigMap name",
        ),
        (
            b'{"type": "config", "namespace": "d", "name": "a", "revision": "r", "data": {"k": 1}}',
            "malformed_frame",
            "data['k'] must be a string",
        ),
        (
            b'{"type": "config", "namespace": "d", "name": "a", "revision": "r", "data": {},'
            b' "binaryData": {"k": "!!"}}',
            "malformed_frame",
            "not valid base64",
        ),
        (b"[" * 100000, "malformed_frame", "nests too deeply"),
    ],
)
def test_bad_bodies_are_named(body: bytes, code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        p.FrameDecoder().feed(frame(body))
    assert info.value.code == code
    assert words in str(info.value)


def test_oversized_frame_is_refused_from_its_header() -> None:
    with pytest.raises(ProtocolError) as info:
        p.FrameDecoder().feed(struct.pack(">I", p.MAX_FRAME_BYTES + 1))
    assert info.value.code == "frame_too_large"


def test_config_over_one_mib_is_refused() -> None:
    body = json.dumps(
        {
            "type": "config",
            "namespace": "d",
            "name": "a",
            "revision": "r",
            "data": {"big": "x" * (p.MAX_CONFIG_BYTES + 1)},
        }
    ).encode()
    with pytest.raises(ProtocolError) as info:
        p.FrameDecoder().feed(frame(body))
    assert info.value.code == "config_too_large"


def test_one_mib_config_fits_in_a_frame() -> None:
    data = {"big.txt": "\x01" * (p.MAX_CONFIG_BYTES - 100)}  # worst-case JSON escaping
    snapshot = p.ConfigSnapshot("d", "a", p.compute_revision(data), data)
    (decoded,) = p.FrameDecoder().feed(p.encode(snapshot))
    assert isinstance(decoded, p.ConfigSnapshot)
    assert decoded.size == snapshot.size


def test_the_limit_counts_values_only_as_the_api_server_does() -> None:
    # kube-apiserver stores a ConfigMap with exactly 1 MiB of values whatever its keys: so must
    # every part of hotconf relay it (tests/e2e/test_configmap_size_limit.py shows the server).
    data = {"k" * 253: "x" * (p.MAX_CONFIG_BYTES - 3), "b": "yyy"}
    snapshot = p.ConfigSnapshot("d", "a", p.compute_revision(data), data)
    assert snapshot.size == p.MAX_CONFIG_BYTES
    (decoded,) = p.FrameDecoder().feed(p.encode(snapshot))
    assert isinstance(decoded, p.ConfigSnapshot) and dict(decoded.data) == data


def test_the_limit_counts_utf8_bytes_of_non_ascii_values() -> None:
    """The size is UTF-8 bytes, not characters, for a text that is not ASCII (an ASCII text is
    measured without being encoded): a config of multi-byte characters under 1 MiB of characters
    but over 1 MiB of bytes is refused, and an ASCII one of exactly 1 MiB is not."""
    count = p.MAX_CONFIG_BYTES // 2 + 1  # "é" is two bytes in UTF-8
    data = {"a": "x", "b": "é" * count}
    assert p.ConfigSnapshot("d", "a", "r", data).size == 1 + 2 * count
    body = json.dumps(
        {"type": "config", "namespace": "d", "name": "a", "revision": "r", "data": data}
    ).encode()
    with pytest.raises(ProtocolError) as info:
        p.FrameDecoder().feed(frame(body))
    assert info.value.code == "config_too_large"
    assert f"{1 + 2 * count} bytes" in info.value.message


def test_revision_is_a_content_hash() -> None:
    assert p.compute_revision({"a": "1"}) == p.compute_revision({"a": "1"})
    assert p.compute_revision({"a": "1"}) != p.compute_revision({"a": "2"})
    assert p.compute_revision({"a": "1"}).startswith("sha256:")
    assert p.compute_revision({}, {"a": b"1"}) != p.compute_revision({"a": "1"})


@given(
    data=st.dictionaries(KEYS, st.text(max_size=20), max_size=8),
    binary=st.dictionaries(KEYS, st.binary(max_size=20), max_size=8),
    shuffle=st.randoms(use_true_random=False),
)
def test_revision_does_not_depend_on_key_order(
    data: dict[str, str], binary: dict[str, bytes], shuffle: random.Random
) -> None:
    def reordered(mapping: dict[str, T]) -> dict[str, T]:
        items = list(mapping.items())
        shuffle.shuffle(items)
        return dict(items)

    revision = p.compute_revision(data, binary)
    assert p.compute_revision(reordered(data), reordered(binary)) == revision
    backwards = (dict(reversed(data.items())), dict(reversed(binary.items())))
    assert p.compute_revision(*backwards) == revision
