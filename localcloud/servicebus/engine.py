"""One AMQP connection: a proton engine (Transport/Connection/Collector) fed by an asyncio socket.

This module only moves bytes and turns proton events into calls on a `LinkHandler`
(the broker logic lives in `amqp_server.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from proton import Collector, Connection, Delivery, Event, Link, Transport

log = logging.getLogger(__name__)


class LinkHandler(Protocol):
    def on_link_open(self, conn: EngineConnection, link: Link) -> None: ...
    def on_link_close(self, conn: EngineConnection, link: Link) -> None: ...
    def on_link_flow(self, conn: EngineConnection, link: Link) -> None: ...
    def on_transfer(self, conn: EngineConnection, link: Link, delivery: Delivery, payload: bytes) -> None: ...
    def on_disposition(self, conn: EngineConnection, link: Link, delivery: Delivery) -> None: ...
    def on_connection_closed(self, conn: EngineConnection) -> None: ...


class EngineConnection(asyncio.Protocol):
    """asyncio protocol wrapping a server-side proton Transport with SASL ANONYMOUS."""

    def __init__(self, handler: LinkHandler, container_id: str) -> None:
        self.handler = handler
        self.engine = Transport(Transport.SERVER)
        self.connection = Connection()
        self.connection.container = container_id
        self.collector = Collector()
        self.connection.collect(self.collector)
        sasl = self.engine.sasl()
        sasl.allowed_mechs("ANONYMOUS")
        self.engine.bind(self.connection)
        self.io: asyncio.Transport | None = None
        self.closed = False
        self.peer = ""
        self.state: dict[str, object] = {}  # per-connection data owned by the handler

    # -- asyncio side -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.io = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.flush()

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            capacity = self.engine.capacity()
            if capacity < 0:
                break
            if capacity == 0:
                self.process()
                if self.engine.capacity() == 0:
                    log.warning("engine input stalled for %s; dropping connection", self.peer)
                    self.abort()
                    return
                continue
            chunk = view[:capacity]
            self.engine.push(bytes(chunk))
            view = view[len(chunk) :]
            self.process()
        self.flush()

    def eof_received(self) -> bool | None:
        self.engine.close_tail()
        self.process()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.engine.close_tail()
            self.engine.close_head()
        except Exception:  # the engine may already be closed; the socket is gone either way
            log.debug("engine close after socket loss", exc_info=True)
        self.handler.on_connection_closed(self)

    def abort(self) -> None:
        """Drop the socket without an AMQP close (fault injection, protocol errors)."""
        if self.io is not None:
            self.io.abort()

    def tick(self, now: float) -> None:
        """Lets proton send heartbeats for idle-timeout negotiated by the client."""
        if not self.closed:
            self.engine.tick(now)
            self.flush()

    # -- engine side --------------------------------------------------------------------------
    def flush(self) -> None:
        if self.io is None or self.closed:
            return
        while True:
            pending = self.engine.pending()
            if pending < 0:
                self.io.close()
                return
            if pending == 0:
                return
            out = self.engine.peek(pending)
            self.engine.pop(len(out))
            self.io.write(out)

    def process(self) -> None:
        collector = self.collector
        while True:
            event = collector.peek()
            if event is None:
                return
            try:
                self._dispatch(event)
            finally:
                collector.pop()

    def _dispatch(self, event: Event) -> None:
        kind = event.type
        if kind == Event.CONNECTION_REMOTE_OPEN:
            self.connection.open()
        elif kind == Event.CONNECTION_REMOTE_CLOSE:
            self.connection.close()
        elif kind == Event.SESSION_REMOTE_OPEN:
            event.session.open()
        elif kind == Event.SESSION_REMOTE_CLOSE:
            event.session.close()
        elif kind == Event.LINK_REMOTE_OPEN:
            self.handler.on_link_open(self, event.link)
        elif kind in (Event.LINK_REMOTE_CLOSE, Event.LINK_REMOTE_DETACH):
            link = event.link
            self.handler.on_link_close(self, link)
            if link.state & Link.LOCAL_ACTIVE:
                link.close()
        elif kind == Event.LINK_FLOW:
            if event.link.is_sender:
                self.handler.on_link_flow(self, event.link)
        elif kind == Event.DELIVERY:
            delivery = event.delivery
            link = delivery.link
            if link.is_receiver:
                if delivery.readable and not delivery.partial:
                    payload = link.recv(delivery.pending)
                    link.advance()
                    self.handler.on_transfer(self, link, delivery, payload or b"")
            elif delivery.updated:
                self.handler.on_disposition(self, link, delivery)


def now() -> float:
    return time.time()
