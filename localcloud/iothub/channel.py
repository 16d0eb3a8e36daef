"""One byte-stream interface over a TLS socket or a WebSocket, so the AMQP and MQTT endpoints serve
both `amqps://:5671` / `mqtts://:8883` and their WebSocket variants on the HTTPS port
(`/$servicebus/websocket/` subprotocol AMQPWSB10, `/$iothub/websocket` subprotocol mqtt)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from aiohttp import WSMsgType, web


class Channel(Protocol):
    async def read(self, n: int = 65536) -> bytes: ...  # b"" at end of stream

    async def readexactly(self, n: int) -> bytes: ...  # raises asyncio.IncompleteReadError at EOF

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class StreamChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read(self, n: int = 65536) -> bytes:
        return await self.reader.read(n)

    async def readexactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()


class WebSocketChannel:
    """Binary WebSocket messages as a byte stream; writes go out in order through one sender task."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self.ws = ws
        self.transport = transport
        self._buffer = bytearray()
        self._eof = False
        self._outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._sender = asyncio.create_task(self._send_loop())

    async def _send_loop(self) -> None:
        while True:
            data = await self._outgoing.get()
            try:
                if data is None:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await self.ws.close()
                    return
                await self.ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                return
            finally:
                self._outgoing.task_done()

    async def _fill(self) -> None:
        while not self._buffer and not self._eof:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                self._buffer.extend(msg.data)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                self._eof = True

    async def read(self, n: int = 65536) -> bytes:
        await self._fill()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def readexactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = await self.read(n - len(out))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(out), n)
            out.extend(chunk)
        return bytes(out)

    def write(self, data: bytes) -> None:
        if data and not self._sender.done():
            self._outgoing.put_nowait(bytes(data))

    async def drain(self) -> None:
        if self._sender.done():
            raise ConnectionError("websocket closed")
        joined = asyncio.ensure_future(self._outgoing.join())
        await asyncio.wait({joined, self._sender}, return_when=asyncio.FIRST_COMPLETED)
        joined.cancel()

    def close(self) -> None:
        if not self._sender.done():
            self._outgoing.put_nowait(None)

    def abort(self) -> None:
        self._eof = True
        self._sender.cancel()
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
