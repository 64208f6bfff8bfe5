"""A burst of connections opened at once, more than asyncio's default listen backlog (100), is
queued by the kernel while the sidecar cannot accept (here: while it is stopped with SIGSTOP),
on its HTTP port and on the relay's Unix socket alike, and every one of them is served once the
sidecar runs again: none waits for a TCP SYN retransmission (1 s) or is refused."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import time

from sidecar_harness import SidecarProcess

#: More than asyncio's default backlog, as many as a busy node's pods might open at once.
BURST = 250


def test_a_burst_of_connections_is_queued_while_the_sidecar_is_busy(
    sidecar: SidecarProcess,
) -> None:
    assert sidecar.proc is not None
    tcp: list[socket.socket] = []
    unix: list[socket.socket] = []
    refused = 0
    os.kill(sidecar.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(BURST):
            s = socket.socket()
            s.setblocking(False)
            assert s.connect_ex(("127.0.0.1", sidecar.port)) in (0, errno.EINPROGRESS)
            tcp.append(s)
            u = socket.socket(socket.AF_UNIX)
            u.setblocking(False)
            code = u.connect_ex(str(sidecar.socket))
            if code == 0:
                unix.append(u)
            else:  # EAGAIN: the Unix socket's queue is full
                refused += 1
                u.close()
        # The kernel completes a handshake for each connection its queue holds, at once; one
        # beyond it waits for a SYN retransmission (1 s, 3 s, ...) that a stopped process
        # cannot make room for. Waiting 5 s lets a retransmission come and fail.
        pending = set(tcp)
        deadline = time.monotonic() + 5
        while pending and time.monotonic() < deadline:
            _, writable, _ = select.select([], list(pending), [], 0.2)
            pending -= set(writable)
        assert not pending, f"{len(pending)} of {BURST} TCP connections not queued"
        assert refused == 0, f"{refused} of {BURST} Unix connections refused"
    finally:
        os.kill(sidecar.proc.pid, signal.SIGCONT)
    try:
        for s in tcp:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
            s.setblocking(True)
            s.settimeout(20)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: sidecar\r\nConnection: close\r\n\r\n")
        for s in tcp:
            assert s.recv(64).startswith(b"HTTP/1.1 200"), "a queued connection was not served"
    finally:
        for s in tcp + unix:
            s.close()
