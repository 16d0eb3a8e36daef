"""A service's AMQP endpoint: accepts connections (sockets or byte streams), counts tokens, drops on demand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from .connection import AmqpConnection, ByteSink
from .service import AmqpService, FaultSwitches
from .tokens import TokenPolicy, TokenStats

log = logging.getLogger(__name__)


class ByteStream(ByteSink, Protocol):
    """A byte stream that is not a socket (AMQP over WebSockets)."""

    async def read(self, n: int = 65536) -> bytes:
        """b"" at the end of the stream."""
        ...

    async def drain(self) -> None: ...


@dataclass
class EndedConnections:
    """How connections ended: with the client's AMQP close (a clean shutdown), or the socket just went."""

    closed_by_client: int = 0
    dropped: int = 0


class AmqpEndpoint:
    def __init__(
        self,
        service: AmqpService,
        faults: FaultSwitches,
        token_policy: Callable[[], TokenPolicy],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.faults = faults
        self.stats = TokenStats()
        self.ended = EndedConnections()
        self.connections: set[AmqpConnection] = set()
        self._token_policy = token_policy
        self._clock = clock

    # ---- ConnectionOwner --------------------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    def token_policy(self) -> TokenPolicy:
        return self._token_policy()

    def forget(self, conn: AmqpConnection, *, closed_by_client: bool) -> None:
        self.connections.discard(conn)
        if closed_by_client:
            self.ended.closed_by_client += 1
        else:
            self.ended.dropped += 1

    # ---- accepting --------------------------------------------------------------------------
    def _open(self, sink: ByteSink, peer: str) -> AmqpConnection:
        conn = AmqpConnection(self, sink, peer)
        self.connections.add(conn)
        return conn

    def protocol(self) -> asyncio.Protocol:
        """A protocol factory for `loop.create_server` (TCP or TLS)."""
        return _Refused() if self.faults.refusing() else _AmqpSocket(self._open)

    async def serve(self, stream: ByteStream, peer: str) -> None:
        """Serve one connection over a byte stream until it ends."""
        if self.faults.refusing():
            stream.abort()
            return
        conn = self._open(stream, peer)
        try:
            while not conn.closed:
                data = await stream.read(65536)
                if not data:
                    conn.end_of_input()
                    break
                conn.feed(data)
                await stream.drain()
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.debug("amqp stream from %s ended: %s", peer, exc)
        finally:
            conn.lost()

    # ---- control ----------------------------------------------------------------------------
    def drop_connections(self) -> int:
        conns = list(self.connections)
        for conn in conns:
            conn.abort()
        return len(conns)

    def reset_stats(self) -> None:
        self.stats = TokenStats()
        self.ended = EndedConnections()

    def check_tokens(self) -> None:
        """Re-check every connection's tokens now (after the token policy changed)."""
        for conn in list(self.connections):
            conn.check_tokens()

    def snapshot(self) -> dict[str, object]:
        return {"connections": len(self.connections), "tokens": asdict(self.stats), "ended": asdict(self.ended)}


class _AmqpSocket(asyncio.Protocol):
    def __init__(self, open_connection: Callable[[ByteSink, str], AmqpConnection]) -> None:
        self._open_connection = open_connection
        self._conn: AmqpConnection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self._conn = self._open_connection(transport, f"{peer[0]}:{peer[1]}" if peer else "?")

    def data_received(self, data: bytes) -> None:
        assert self._conn is not None
        self._conn.feed(data)

    def eof_received(self) -> bool | None:
        assert self._conn is not None
        self._conn.end_of_input()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._conn.lost()


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        with contextlib.suppress(AttributeError):
            transport.abort()  # type: ignore[attr-defined]
