"""Test harness for the sidecar: a keypair, signed pushes, the sidecar as a process, raw clients.

``SidecarProcess`` runs the real ``hotconf-sidecar`` console script on 127.0.0.1 with a free
port, a temporary state directory and socket; every test stops (or kills) what it started.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hotconf.testing import snapshot
from hotconf_wire import protocol as p
from hotconf_wire.envelope import (
    PUSH_PATH,
    SIGNATURE_HEADER,
    PodRef,
    Push,
    encode_payload,
    encode_signature,
    key_id,
)

POD = PodRef("shop", "web-0", "8e1b7c8a-0000-4000-8000-000000000001")
SCRIPT = Path(sys.executable).with_name("hotconf-sidecar")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Envelope:
    """One ``POST /v2/push``: the body (the signed payload) and its signature header."""

    body: bytes
    signature: str | None

    def with_body(self, body: bytes) -> Envelope:
        return Envelope(body, self.signature)


@dataclass
class Signer:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    sequence: int = field(default_factory=time.time_ns)

    @property
    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    @property
    def raw_public(self) -> bytes:
        """The raw 32-byte public key, as a push's ``trust`` list carries it."""
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return key_id(self.raw_public)

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def body(
        self,
        data: Mapping[str, str],
        *,
        name: str = "app",
        pod: PodRef = POD,
        sequence: int | None = None,
        expires: float | None = None,
        binary: Mapping[str, bytes] | None = None,
        trust: tuple[bytes, ...] | None = None,
        with_key_id: bool = False,
    ) -> Envelope:
        """A push as the operator builds it; ``trust`` announces keys (raw), ``with_key_id``
        names this key in the header."""
        snap = snapshot(data, binary_data=binary, namespace=pod.namespace, name=name)
        push = Push(
            pod=pod,
            snapshot=snap,
            sequence=self.next_sequence() if sequence is None else sequence,
            expires=time.time() + 60 if expires is None else expires,
            trust=trust,
        )
        return self.sign(encode_payload(push), with_key_id=with_key_id)

    def sign(self, payload: bytes, *, with_key_id: bool = False) -> Envelope:
        """Any payload, signed with this key: for pushes the operator would never build."""
        key = self.key_id if with_key_id else None
        return Envelope(payload, encode_signature(self.key.sign(payload), key=key))


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def reason(self) -> str:
        return str(self.body["error"]["reason"])


class SidecarProcess:
    """The ``hotconf-sidecar`` console script as a child process."""

    def __init__(
        self, tmp: Path, signer: Signer, *extra: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.tmp = tmp
        self.signer = signer
        self.port = free_port()
        self.socket = tmp / "run" / "hotconf.sock"
        self.state_dir = tmp / "state"
        self.log = tmp / f"sidecar-{self.port}.log"
        self.extra = extra
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SidecarProcess:
        key_file = self.tmp / "operator.pub"
        key_file.write_text(self.signer.public_pem)
        env = {
            **os.environ,
            "HOTCONF_POD_NAMESPACE": POD.namespace,
            "HOTCONF_POD_NAME": POD.name,
            "HOTCONF_POD_UID": POD.uid,
            "HOTCONF_OPERATOR_PUBLIC_KEY_FILE": str(key_file),
            "HOTCONF_ACK_TIMEOUT": "2",
            **self.env,
        }
        args = [
            str(SCRIPT),
            "--listen", f"127.0.0.1:{self.port}",
            "--socket", str(self.socket),
            "--state-dir", str(self.state_dir),
            *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"sidecar exited {self.proc.returncode}: {self.logs()}")
            with contextlib.suppress(OSError):
                if self.get("/readyz").status == 200:
                    return
            time.sleep(0.05)
        assert self.proc is not None
        self.proc.kill()  # a sidecar that never got ready must not outlive the test
        self.proc.wait()
        raise AssertionError(f"sidecar not ready in {timeout}s: {self.logs()}")

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        timeout: float = 10,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(
                method,
                path,
                body=body,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        ctype = response.getheader("Content-Type", "")
        return Answer(response.status, json.loads(raw) if "json" in ctype else raw.decode())

    def get(self, path: str) -> Answer:
        return self.request("GET", path, timeout=5)

    def push(self, envelope: Envelope | bytes) -> Answer:
        """POST a signed envelope, or bare bytes with no signature header."""
        if isinstance(envelope, bytes):
            envelope = Envelope(envelope, None)
        headers = {} if envelope.signature is None else {SIGNATURE_HEADER: envelope.signature}
        return self.request("POST", PUSH_PATH, envelope.body, headers=headers)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"sidecar ignored signal {sig}: {self.logs()}") from None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


class RawClient:
    """A relay client speaking wire protocol v1 on a plain socket, for tests."""

    def __init__(self, path: Path, *refs: p.ConfigMapRef, name: str = "test", pid: int = 1) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.sock.sendall(p.encode(p.Hello(configmaps=refs, client=name, pid=pid)))
        welcome = p.recv_message(self.sock)
        assert isinstance(welcome, p.Welcome), welcome

    def next_config(self) -> p.ConfigSnapshot:
        while True:
            message = p.recv_message(self.sock)
            if isinstance(message, p.Heartbeat):
                continue
            assert isinstance(message, p.ConfigSnapshot), message
            return message

    def ack(self, snap: p.ConfigSnapshot) -> None:
        self.sock.sendall(p.encode(p.Ack(snap.namespace, snap.name, snap.revision)))

    def nack(self, snap: p.ConfigSnapshot, error: str) -> None:
        self.sock.sendall(p.encode(p.Nack(snap.namespace, snap.name, snap.revision, error)))

    def close(self) -> None:
        self.sock.close()
