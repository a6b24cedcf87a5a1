"""Connection.flushed (puppets/connection.py): a delivery skips waiting for the drain
only when nothing is left in the transport's buffer. Real sockets on 127.0.0.1: a peer
that does not read keeps written bytes in the buffer (flushed is False, drain() waits),
and reading them all makes it True again; a closed link is never flushed."""

from __future__ import annotations

import asyncio

from puppets.connection import Connection


async def test_flushed_follows_the_write_buffer() -> None:
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = await Connection.open("127.0.0.1", port, on_command=lambda cmd: None)
    peer_reader, peer_writer = await accepted.get()
    try:
        assert conn.flushed
        chunk = b"x" * 65536
        written = 0
        while conn.flushed or written < 8 * 2**20:  # past the kernel's buffers
            conn._writer.write(chunk)
            written += len(chunk)
        assert not conn.flushed
        drain = asyncio.create_task(conn.drain())
        await asyncio.sleep(0.05)
        assert not drain.done()  # what the delivery would have waited for
        await peer_reader.readexactly(written)
        await asyncio.wait_for(drain, 10)
        assert conn.flushed
        conn._writer.close()
        assert not conn.flushed
    finally:
        peer_writer.close()
        server.close()
        await server.wait_closed()
