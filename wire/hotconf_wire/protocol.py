"""Wire protocol v1 between a relay (the sidecar, or ``hotconf dev``) and application processes.

This module is the single implementation of the protocol specified in ``docs/protocol.md``;
the application library, the sidecar's relay and ``hotconf dev`` all frame and parse messages
here, so the two ends cannot drift apart. It depends on the standard library only.

A frame is a 4-byte big-endian unsigned length followed by that many bytes of a UTF-8 JSON
object whose ``"type"`` names the message. The messages::

    client -> relay   hello      protocol version, wanted ConfigMaps, client name and pid
    relay  -> client  welcome    protocol version, relay name
    relay  -> client  config     a full snapshot of one ConfigMap at one revision
    client -> relay   ack/nack   the client's verdict on one revision
    both   -> both    heartbeat  liveness; either side may send it at any time
    both   -> both    error      a reason, then the sender closes the connection

Errors raised here::

    ProtocolError                 (hotconf_wire.errors.HotconfError)
      carries .code: one of ERROR_CODES, sent back to the peer in an ``error`` frame
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeAlias

from hotconf_wire.errors import ProtocolError

__all__ = [
    "ERROR_CODES",
    "MAX_CONFIG_BYTES",
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "Ack",
    "ConfigMapRef",
    "ConfigSnapshot",
    "ErrorReply",
    "FrameDecoder",
    "Heartbeat",
    "Hello",
    "Message",
    "Nack",
    "Welcome",
    "compute_revision",
    "decode_body",
    "encode",
    "encode_body",
    "frame",
    "from_wire",
    "recv_message",
    "refs",
    "to_wire",
]

PROTOCOL_VERSION: Final = 1

#: A ConfigMap holds at most 1 MiB of values (kube-apiserver's validation counts the bytes of
#: every value of ``data`` and decoded ``binaryData``, not the keys); a snapshot is held to the
#: same limit, counted the same way, so that whatever the API server stores is relayed.
MAX_CONFIG_BYTES: Final = 1024 * 1024

#: A frame may be larger than the config it carries: base64 grows ``binaryData`` by a third and
#: JSON writes a control character as six bytes (``\u0001``). 8 MiB covers every legal ConfigMap,
#: even one made of control characters; the decoded size is checked against MAX_CONFIG_BYTES.
MAX_FRAME_BYTES: Final = 8 * 1024 * 1024

#: Codes carried by ``error`` frames and by :class:`ProtocolError`.
ERROR_CODES: Final = frozenset(
    {
        "frame_too_large",  # the length prefix exceeds MAX_FRAME_BYTES
        "malformed_frame",  # not UTF-8 JSON, not an object, unknown type, wrong field types
        "unsupported_version",  # hello asked for a version this side does not speak
        "unexpected_message",  # a valid message at the wrong moment (e.g. config before hello)
        "config_too_large",  # a snapshot's data exceeds MAX_CONFIG_BYTES
        "shutting_down",  # the relay is stopping; reconnect later
    }
)

_HEADER: Final = struct.Struct(">I")
_KEY_RE: Final = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
# DNS-1123 subdomain for ConfigMap names, DNS-1123 label for namespaces.
_NAME_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True, slots=True, order=True)
class ConfigMapRef:
    """A ConfigMap's identity: namespace and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame of every connection: which version the client speaks and what it wants.

    An empty ``configmaps`` subscribes to every ConfigMap the relay serves.
    """

    configmaps: tuple[ConfigMapRef, ...] = ()
    client: str = ""
    pid: int | None = None
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Welcome:
    """The relay's answer to a supported hello."""

    server: str = ""
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """A full ConfigMap at one revision; never a delta."""

    namespace: str
    name: str
    revision: str
    data: Mapping[str, str] = field(default_factory=dict)
    binary_data: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def ref(self) -> ConfigMapRef:
        return ConfigMapRef(self.namespace, self.name)

    @property
    def size(self) -> int:
        """Bytes of data as the API server's ConfigMap limit counts them: the values only."""
        # An ASCII text has as many bytes as characters (``isascii`` reads a flag of the str,
        # where ``encode`` would copy the text): a 1 MiB config is not copied to be measured.
        return sum(len(v) if v.isascii() else len(v.encode()) for v in self.data.values()) + sum(
            len(v) for v in self.binary_data.values()
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """The client runs ``revision`` (sent once the new generation of its task has started)."""

    namespace: str
    name: str
    revision: str


@dataclass(frozen=True, slots=True)
class Nack:
    """The client rejected ``revision`` and keeps running its previous config."""

    namespace: str
    name: str
    revision: str
    error: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Liveness probe; the receiver does not answer it."""


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """Why the sender is about to close the connection."""

    code: str
    message: str


Message: TypeAlias = Hello | Welcome | ConfigSnapshot | Ack | Nack | Heartbeat | ErrorReply


def compute_revision(data: Mapping[str, str], binary_data: Mapping[str, bytes] = {}) -> str:
    """The content revision of a ConfigMap: ``sha256:`` and the hex digest of its canonical JSON.

    Only the producers of snapshots (the operator, ``hotconf dev``) compute it; clients treat a
    revision as an opaque string.
    """
    canonical = json.dumps(
        {
            "binaryData": {k: base64.b64encode(v).decode() for k, v in binary_data.items()},
            "data": dict(data),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Encoding


def to_wire(message: Message) -> dict[str, Any]:
    """The JSON object of ``message`` as it travels."""
    match message:
        case Hello():
            return {
                "type": "hello",
                "version": message.version,
                "configmaps": [
                    {"namespace": r.namespace, "name": r.name} for r in message.configmaps
                ],
                "client": message.client,
                "pid": message.pid,
            }
        case Welcome():
            return {"type": "welcome", "version": message.version, "server": message.server}
        case ConfigSnapshot():
            return {
                "type": "config",
                "namespace": message.namespace,
                "name": message.name,
                "revision": message.revision,
                "data": dict(message.data),
                "binaryData": {
                    k: base64.b64encode(v).decode("ascii") for k, v in message.binary_data.items()
                },
            }
        case Ack():
            return {
                "type": "ack",
                "namespace": message.namespace,
                "name": message.name,
                "revision": message.revision,
            }
        case Nack():
            return {
                "type": "nack",
                "namespace": message.namespace,
                "name": message.name,
                "revision": message.revision,
                "error": message.error,
            }
        case Heartbeat():
            return {"type": "heartbeat"}
        case ErrorReply():
            return {"type": "error", "code": message.code, "message": message.message}
    raise TypeError(f"not a hotconf protocol message: {message!r}")  # pragma: no cover


#: One encoder for every frame: ``json.dumps`` with options builds a new encoder per call.
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_body(message: Message) -> bytes:
    """The body of ``message``'s frame: compact UTF-8 JSON (a push envelope carries it too)."""
    body = _ENCODER.encode(to_wire(message)).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise ProtocolError(
            "frame_too_large",
            f"a {type(message).__name__} frame of {len(body)} bytes exceeds the "
            f"{MAX_FRAME_BYTES}-byte limit",
        )
    return body


def frame(body: bytes) -> bytes:
    """A complete frame around a body from :func:`encode_body` (or a verified push)."""
    _check_length(len(body))
    return _HEADER.pack(len(body)) + body


def encode(message: Message) -> bytes:
    """One complete frame (length prefix and body) for ``message``."""
    body = encode_body(message)
    return _HEADER.pack(len(body)) + body


# ---------------------------------------------------------------------------------------------
# Decoding


def _field(obj: Mapping[str, Any], name: str, kind: type, kind_name: str, *, where: str) -> Any:
    if name not in obj:
        raise ProtocolError("malformed_frame", f"{where}: field {name!r} is missing")
    value = obj[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(
            "malformed_frame",
            f"{where}: field {name!r} must be {kind_name}, not {type(value).__name__}",
        )
    return value


def _ref(obj: Mapping[str, Any], *, where: str) -> ConfigMapRef:
    namespace = _field(obj, "namespace", str, "a string", where=where)
    name = _field(obj, "name", str, "a string", where=where)
    if not _NAME_RE.match(namespace) or len(namespace) > 63:
        raise ProtocolError("malformed_frame", f"{where}: {namespace!r} is not a namespace name")
    if not _NAME_RE.match(name):
        raise ProtocolError("malformed_frame", f"{where}: {name!r} is not a ConfigMap name")
    return ConfigMapRef(namespace, name)


def _snapshot(obj: Mapping[str, Any]) -> ConfigSnapshot:
    ref = _ref(obj, where="config")
    revision = _field(obj, "revision", str, "a string", where="config")
    if not revision:
        raise ProtocolError("malformed_frame", "config: field 'revision' is empty")
    raw_data = _field(obj, "data", dict, "an object", where="config")
    raw_binary = obj.get("binaryData", {})
    if not isinstance(raw_binary, dict):
        raise ProtocolError("malformed_frame", "config: field 'binaryData' must be an object")
    data: dict[str, str] = {}
    for key, value in raw_data.items():
        if not _KEY_RE.match(key):
            raise ProtocolError("malformed_frame", f"config: data key {key!r} is not a valid key")
        if not isinstance(value, str):
            raise ProtocolError("malformed_frame", f"config: data[{key!r}] must be a string")
        data[key] = value
    binary: dict[str, bytes] = {}
    for key, value in raw_binary.items():
        if not _KEY_RE.match(key):
            raise ProtocolError(
                "malformed_frame", f"config: binaryData key {key!r} is not a valid key"
            )
        if key in data:
            raise ProtocolError(
                "malformed_frame", f"config: key {key!r} is in both data and binaryData"
            )
        if not isinstance(value, str):
            raise ProtocolError("malformed_frame", f"config: binaryData[{key!r}] must be base64")
        try:
            binary[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(
                "malformed_frame", f"config: binaryData[{key!r}] is not valid base64"
            ) from exc
    snapshot = ConfigSnapshot(
        ref.namespace, ref.name, revision, MappingProxyType(data), MappingProxyType(binary)
    )
    if snapshot.size > MAX_CONFIG_BYTES:
        raise ProtocolError(
            "config_too_large",
            f"config {ref}: {snapshot.size} bytes of data exceed the "
            f"{MAX_CONFIG_BYTES}-byte ConfigMap limit",
        )
    return snapshot


def from_wire(obj: Mapping[str, Any]) -> Message:
    """Validate a decoded JSON object and build its message; raise :class:`ProtocolError`."""
    kind = obj.get("type")
    match kind:
        case "hello":
            version = _field(obj, "version", int, "an integer", where="hello")
            refs = obj.get("configmaps", [])
            if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
                raise ProtocolError(
                    "malformed_frame", "hello: field 'configmaps' must be a list of objects"
                )
            client = obj.get("client", "")
            pid = obj.get("pid")
            if not isinstance(client, str):
                raise ProtocolError("malformed_frame", "hello: field 'client' must be a string")
            if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)):
                raise ProtocolError("malformed_frame", "hello: field 'pid' must be an integer")
            return Hello(
                configmaps=tuple(_ref(r, where="hello.configmaps[]") for r in refs),
                client=client,
                pid=pid,
                version=version,
            )
        case "welcome":
            version = _field(obj, "version", int, "an integer", where="welcome")
            server = obj.get("server", "")
            return Welcome(server=server if isinstance(server, str) else "", version=version)
        case "config":
            return _snapshot(obj)
        case "ack" | "nack":
            ref = _ref(obj, where=kind)
            revision = _field(obj, "revision", str, "a string", where=kind)
            if kind == "ack":
                return Ack(ref.namespace, ref.name, revision)
            error = _field(obj, "error", str, "a string", where=kind)
            return Nack(ref.namespace, ref.name, revision, error)
        case "heartbeat":
            return Heartbeat()
        case "error":
            code = _field(obj, "code", str, "a string", where="error")
            message = _field(obj, "message", str, "a string", where="error")
            return ErrorReply(code, message)
    raise ProtocolError("malformed_frame", f"unknown message type {kind!r}")


def decode_body(body: bytes | bytearray | memoryview) -> Message:
    """Parse one frame body; raise :class:`ProtocolError` naming what is wrong."""
    try:
        # ``str(buffer, ...)`` takes any buffer, so a frame is parsed where it was received.
        obj = json.loads(str(body, "utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError("malformed_frame", f"frame body is not UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ProtocolError("malformed_frame", f"frame body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise ProtocolError("malformed_frame", "frame body nests too deeply") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(
            "malformed_frame", f"frame body must be a JSON object, not {type(obj).__name__}"
        )
    return from_wire(obj)


def _check_length(length: int) -> None:
    if length > MAX_FRAME_BYTES:
        raise ProtocolError(
            "frame_too_large",
            f"frame of {length} bytes exceeds the {MAX_FRAME_BYTES}-byte limit",
        )


class FrameDecoder:
    """Incremental decoder for a byte stream: feed it what arrives, take whole messages out.

    Two ways to take them: :meth:`feed` returns a list (the application library's reader),
    :meth:`deliver` hands each message to a callback as soon as it is decoded (the relay's
    connections, which must act on every message before a bad frame after it in the same read).
    A chunk that ends on a frame boundary is parsed where it lies; only the bytes of an
    incomplete frame are kept, so a frame split across reads is joined once.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes | memoryview) -> list[Message]:
        """Append ``chunk``; return every complete message, raise on the first bad frame."""
        messages: list[Message] = []
        self.deliver(chunk, messages.append)
        return messages

    def deliver(self, chunk: bytes | memoryview, into: Callable[[Message], object]) -> None:
        """Append ``chunk`` and call ``into`` with each complete message, in order.

        Raises :class:`ProtocolError` on the first bad frame, after ``into`` had every message
        before it; an error that ``into`` raises stops the decoding there. Either way the stream
        is broken from that frame on: feed this decoder nothing more.
        """
        buffer = self._buffer
        data: bytes | bytearray | memoryview
        if buffer:
            buffer += chunk
            data = buffer
        else:
            data = chunk  # the usual case: parsed in place, nothing copied to a buffer
        size = len(data)
        offset = 0
        try:
            while size - offset >= _HEADER.size:
                (length,) = _HEADER.unpack_from(data, offset)
                _check_length(length)
                start = offset + _HEADER.size
                end = start + length
                if end > size:
                    break
                offset = end
                into(decode_body(data[start:end]))
        finally:
            if data is buffer:
                del buffer[:offset]
            elif offset < size:
                buffer += data[offset:]  # a copy: the caller may reuse its chunk's memory

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buffer)

    def eof(self) -> None:
        """The stream ended: raise :class:`ProtocolError` if it ended inside a frame."""
        buffer = self._buffer
        if not buffer:
            return
        if len(buffer) < _HEADER.size:
            raise ProtocolError("malformed_frame", "connection closed inside a frame header")
        (length,) = _HEADER.unpack_from(buffer)
        raise ProtocolError(
            "malformed_frame",
            f"connection closed after {len(buffer) - _HEADER.size} of {length} frame bytes",
        )


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            if chunks:
                raise ProtocolError(
                    "malformed_frame", f"connection closed after {len(chunks)} of {size} bytes"
                )
            return None
        chunks += chunk
    return bytes(chunks)


def recv_message(sock: socket.socket) -> Message | None:
    """Read one message from a blocking socket; ``None`` on a clean end of stream."""
    header = _recv_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    _check_length(length)
    body = _recv_exactly(sock, length) if length else b""
    if body is None:
        raise ProtocolError("malformed_frame", f"connection closed before a {length}-byte body")
    return decode_body(body)


def refs(names: Iterable[str], *, namespace: str) -> tuple[ConfigMapRef, ...]:
    """Build ConfigMap references from plain names or ``namespace/name`` strings."""
    result = []
    for item in names:
        ns, _, name = item.rpartition("/")
        result.append(ConfigMapRef(ns or namespace, name))
    return tuple(result)
