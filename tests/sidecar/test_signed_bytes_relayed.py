"""The sidecar hands on the bytes the operator signed: the config frame each client reads is the
second line of the verified push, byte for byte, when the push arrives and again after a
restart of the sidecar (restored from its state directory), never a re-encoding of it."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from sidecar_harness import SidecarProcess, Signer

from hotconf_wire import protocol as p


def raw_config_frame(path: Path) -> bytes:
    """Connect as a client and return the body of the first config frame, unparsed."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(p.encode(p.Hello(client="raw", pid=1)))
        reader = sock.makefile("rb")
        while True:
            (length,) = struct.unpack(">I", reader.read(4))
            body = reader.read(length)
            if b'"type":"config"' in body[:20]:
                return body


def test_the_signed_frame_reaches_clients_unchanged(tmp_path: Path, signer: Signer) -> None:
    sidecar = SidecarProcess(tmp_path, signer).start()
    try:
        # Key order and spacing no encoder of ours would produce: a re-encoding would show.
        frame = (
            b'{"type":"config", "revision":"sha256:0", "name":"app", "namespace":"shop",'
            b' "binaryData":{}, "data":{"z":"1", "a":"\\u00e9"}}'
        )
        head = signer.body({"k": "v"}).body.partition(b"\n")[0]
        assert sidecar.push(signer.sign(head + b"\n" + frame)).status == 200
        assert raw_config_frame(sidecar.socket) == frame
        sidecar.kill()
        sidecar.start()
        assert raw_config_frame(sidecar.socket) == frame
        assert sidecar.stop() == 0
    finally:
        if sidecar.proc is not None and sidecar.proc.poll() is None:
            sidecar.kill()
