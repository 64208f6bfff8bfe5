"""CPU per push of the operator's sidecar HTTP client, against aiohttp's ``ClientSession``.

Run: ``.venv/bin/python bench/push_client.py [--requests 3000] [--client hotconf|aiohttp]``.
One process pushes a 1.6 KiB body over one kept-alive connection to a minimal asyncio HTTP
server in the same process and prints, per client, the CPU time per request (client and server
together) and the wall time per request. ``hotconf`` is the operator's own
(``hotconf_operator._sidecar_http``: httptools on an asyncio.Protocol); ``aiohttp`` is what it
replaced. (Commit 5e59930 of this script also measured a client of our own built on h11.)
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp

BODY = b"x" * 1600
ANSWER_BODY = b'{"status":"applied","revision":"r","sequence":1,"clients":[]}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(ANSWER_BODY)).encode() + b"\r\n\r\n" + ANSWER_BODY
)


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main(requests: int, client: str) -> None:
    from hotconf_operator._sidecar_http import SidecarHttp

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = aiohttp.ClientSession()
    http = SidecarHttp()
    url = f"http://127.0.0.1:{port}/v2/push"
    headers = (("Content-Type", "application/json"), ("Hotconf-Signature", "s" * 88))

    async def with_aiohttp() -> None:
        async with session.post(url, data=BODY, headers=dict(headers)) as response:
            await response.read()

    async def with_hotconf() -> None:
        await http.request(
            "127.0.0.1", port, "POST", "/v2/push", headers=headers, body=BODY, within=5
        )

    push: Callable[[], Awaitable[None]] = with_aiohttp if client == "aiohttp" else with_hotconf
    try:
        for _ in range(200):  # warm-up
            await push()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            await push()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await session.close()
        await http.aclose()
        await asyncio.sleep(0.05)  # let the server's handler see the end of the connection
        server.close()
        await server.wait_closed()
    print(
        f"{client}: {requests} pushes of {len(BODY)} bytes: CPU {cpu / requests * 1e6:.0f} us per "
        f"request (client and server), wall {wall / requests * 1e6:.0f} us"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="timed requests (3000)")
    parser.add_argument("--client", choices=("hotconf", "aiohttp", "both"), default="both")
    args = parser.parse_args()
    for name in ("hotconf", "aiohttp") if args.client == "both" else (args.client,):
        asyncio.run(main(args.requests, name))
