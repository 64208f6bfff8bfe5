"""A TLS handshake as kube-apiserver makes it to a webhook, for the chart's certificate tests.

:func:`handshake` serves TLS on loopback with a certificate and key, connects trusting only a CA
(the webhook's ``caBundle``) and checking ``server_hostname`` (the Service name or the
``webhook.url`` host), and echoes a few bytes. A certificate that does not verify raises
:class:`ssl.SSLCertVerificationError`. Used by ``tests/packaging/test_chart_wiring.py`` and
``tests/packaging/test_chart_webhook_url.py``.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from pathlib import Path

__all__ = ["handshake"]


def _server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    # ssl loads a certificate chain from files only.
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        cert.write_bytes(cert_pem)
        key.write_bytes(key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    return context


async def handshake(
    cert_pem: bytes, key_pem: bytes, *, ca_pem: bytes, server_hostname: str
) -> None:
    server_context = _server_context(cert_pem, key_pem)
    client_context = ssl.create_default_context(cadata=ca_pem.decode())

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_context)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname=server_hostname
        )
        writer.write(b"hello")
        assert await reader.readexactly(5) == b"hello"
        writer.close()
        await writer.wait_closed()
