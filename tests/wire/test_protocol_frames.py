"""Wire protocol v1 frames: every message round-trips, and every bad frame is a ProtocolError
with the right code and a message naming what is wrong."""

from __future__ import annotations

import json
import struct

import pytest

from hotconf_wire import protocol as p
from hotconf_wire.errors import ProtocolError

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


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: p.Message) -> None:
    (decoded,) = p.FrameDecoder().feed(p.encode(message))
    if isinstance(message, p.ConfigSnapshot):
        assert isinstance(decoded, p.ConfigSnapshot)
        assert dict(decoded.data) == dict(message.data)
        assert dict(decoded.binary_data) == dict(message.binary_data)
        assert decoded.revision == message.revision
    else:
        assert decoded == message


def test_decoder_handles_split_and_joined_frames() -> None:
    stream = b"".join(p.encode(m) for m in MESSAGES)
    decoder = p.FrameDecoder()
    out: list[p.Message] = []
    for i in range(0, len(stream), 7):
        out += decoder.feed(stream[i : i + 7])
    assert len(out) == len(MESSAGES)
    assert decoder.pending == 0


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


def test_revision_is_a_content_hash() -> None:
    assert p.compute_revision({"a": "1"}) == p.compute_revision({"a": "1"})
    assert p.compute_revision({"a": "1"}) != p.compute_revision({"a": "2"})
    assert p.compute_revision({"a": "1"}).startswith("sha256:")
    assert p.compute_revision({}, {"a": b"1"}) != p.compute_revision({"a": "1"})
