"""The pre-bound listening socket keeps keep-alive responses prompt."""

from __future__ import annotations

import asyncio
import socket

from loom_core.cli.serve_cmd import bind_listener


def test_accepted_connections_have_tcp_nodelay() -> None:
    """Connections accepted on the listener get TCP_NODELAY from asyncio.

    Without it Nagle holds the second segment of each response until the
    client's delayed ACK, adding ~40 ms to every request on a kept-alive
    connection. asyncio only sets it when the listener's proto is TCP.
    """
    listener = bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    seen: list[int] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        accepted = asyncio.Event()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                accepted.set()

        server = await loop.create_server(Probe, sock=listener)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(accepted.wait(), timeout=10)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())
    assert seen and seen[0] != 0
