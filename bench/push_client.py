"""CPU per push of the operator's sidecar HTTP client (aiohttp's ``ClientSession``).

Run: ``.venv/bin/python bench/push_client.py [--requests 3000]``. One process pushes a
1.6 KiB
body over one kept-alive connection to a minimal asyncio HTTP server in the same process and
prints the CPU time per request (client and server together) and the wall time per request.
(Commit 5e59930 of this script also measured a client of our own built on h11, for comparison.)
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


async def main(requests: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = aiohttp.ClientSession()
    url = f"http://127.0.0.1:{port}/v2/push"

    async def with_aiohttp() -> None:
        async with session.post(url, data=BODY) as response:
            await response.read()

    push: Callable[[], Awaitable[None]] = with_aiohttp
    try:
        for _ in range(200):  # warm-up
            await push()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            await push()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await session.close()
        await asyncio.sleep(0.05)  # let the server's handler see the end of the connection
        server.close()
        await server.wait_closed()
    print(
        f"aiohttp: {requests} pushes of {len(BODY)} bytes: CPU {cpu / requests * 1e6:.0f} us per "
        f"request (client and server), wall {wall / requests * 1e6:.0f} us"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="timed requests (3000)")
    asyncio.run(main(parser.parse_args().requests))
