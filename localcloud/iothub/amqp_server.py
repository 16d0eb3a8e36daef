"""AMQP 1.0 service endpoint (TLS) on the python-qpid-proton engine, driven by asyncio streams.

Per connection: our own SASL step (amqp_sasl) then a proton Transport without SASL. Links:
`$cbs` (put-token), `/messages/devicebound` (C2D sends) and `/messages/servicebound/feedback`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from proton import (
    Collector,
    Condition,
    Connection,
    Delivery,
    Endpoint,
    Event,
    Link,
    Message,
    ProtonException,
    Transport,
    int32,
    symbol,
)

from . import sas
from .amqp_messages import (
    C2D_ADDRESS,
    CBS_ADDRESS,
    FEEDBACK_ADDRESS,
    feedback_to_message,
    normalize_address,
    text_of,
    to_cloud_message,
)
from .amqp_sasl import AMQP_HEADER, SASL_HEADER, SaslError, serve_sasl
from .channel import Channel, StreamChannel
from .hub import Hub
from .store import SendError

log = logging.getLogger(__name__)

RECEIVER_CREDIT = 500
OPEN_TIMEOUT_S = 30.0  # a client that connects but never speaks AMQP/SASL is dropped


def _condition(name: str, description: str, tracking_id: str | None = None) -> Condition:
    return Condition(name, description, {symbol("com.microsoft:tracking-id"): tracking_id or uuid.uuid4().hex})


@dataclass
class _Outstanding:
    link: Link
    lock_token: str


@dataclass(eq=False)
class AmqpConnection:
    endpoint: AmqpEndpoint
    channel: Channel
    transport: Transport = field(default_factory=lambda: Transport(Transport.SERVER))
    connection: Connection = field(default_factory=Connection)
    collector: Collector = field(default_factory=Collector)
    authorized: bool = False
    cbs_replies: deque[Message] = field(default_factory=deque)
    feedback_links: list[Link] = field(default_factory=list)
    outstanding: dict[tuple[str, str], _Outstanding] = field(default_factory=dict)
    closed: bool = False
    _tag: int = 0

    @property
    def hub(self) -> Hub:
        return self.endpoint.hub

    async def run(self) -> None:
        try:
            header = await asyncio.wait_for(self.channel.readexactly(8), OPEN_TIMEOUT_S)
            if header == SASL_HEADER:
                result = await asyncio.wait_for(serve_sasl(self.channel), OPEN_TIMEOUT_S)
                log.debug("SASL mechanism %s", result.mechanism)
                if result.mechanism == "PLAIN" and result.password:
                    self._authorize(result.password)
                header = await asyncio.wait_for(self.channel.readexactly(8), OPEN_TIMEOUT_S)
            if header != AMQP_HEADER:
                self.channel.write(AMQP_HEADER)
                return
            self.connection.container = self.hub.config.hub_name
            self.transport.bind(self.connection)
            self.connection.collect(self.collector)
            self.transport.push(header)
            self.pump()
            while not self.closed:
                try:
                    data = await asyncio.wait_for(self.channel.read(65536), timeout=1.0)
                except TimeoutError:
                    self.transport.tick(time.monotonic())
                    self.pump()
                    continue
                if not data:
                    self.transport.close_tail()
                    self.pump()
                    break
                self._feed(data)
                await self.channel.drain()
        except (asyncio.IncompleteReadError, OSError, SaslError, ProtonException) as exc:
            log.debug("amqp connection ended: %s", exc)
        finally:
            self._release_outstanding()
            self.closed = True
            self.channel.close()

    def _feed(self, data: bytes) -> None:
        """Push in chunks of the transport's input capacity, processing in between."""
        view = memoryview(data)
        while view and not self.closed and self.transport.capacity() > 0:
            chunk = view[: self.transport.capacity()]
            self.transport.push(bytes(chunk))
            view = view[len(chunk) :]
            self.pump()
        if not self.closed and self.transport.capacity() < 0:
            # Input side closed (peer's close or a protocol error): flush what is left and hang up.
            self.pump()
            self.closed = True
            self.channel.close()
        elif view and not self.closed:
            raise ConnectionError("AMQP transport input stalled")

    def abort(self) -> None:
        """Fault injection: drop the TCP connection without an AMQP close."""
        self.closed = True
        self.channel.abort()

    # ---- engine plumbing ------------------------------------------------------------------
    def pump(self) -> None:
        if self.closed:
            return
        while (event := self.collector.peek()) is not None:
            try:
                self._handle(event)
            finally:
                self.collector.pop()
        while (pending := self.transport.pending()) > 0:
            self.channel.write(self.transport.peek(pending))
            self.transport.pop(pending)
        if pending < 0:  # head closed: everything written
            self.closed = True
            self.channel.close()

    def _handle(self, event: Event) -> None:
        kind = event.type
        if kind == Event.CONNECTION_REMOTE_OPEN:
            self.connection.open()
        elif kind == Event.SESSION_REMOTE_OPEN:
            event.session.open()
        elif kind == Event.LINK_REMOTE_OPEN:
            self._on_link_open(event.link)
        elif kind == Event.LINK_FLOW:
            if event.link.is_sender:
                self._feed_link(event.link)
        elif kind == Event.DELIVERY:
            if event.link.is_receiver:
                self._on_transfer(event.link, event.delivery)
            else:
                self._on_disposition(event.link, event.delivery)
        elif kind == Event.LINK_REMOTE_CLOSE:
            self._on_link_gone(event.link)
            if event.link.state & Endpoint.LOCAL_ACTIVE:
                event.link.close()
        elif kind == Event.SESSION_REMOTE_CLOSE:
            if event.session.state & Endpoint.LOCAL_ACTIVE:
                event.session.close()
        elif kind == Event.CONNECTION_REMOTE_CLOSE and self.connection.state & Endpoint.LOCAL_ACTIVE:
            self.connection.close()

    def _next_tag(self) -> str:
        self._tag += 1
        return str(self._tag)  # ASCII: proton hands tags back as str

    # ---- links ----------------------------------------------------------------------------
    def _on_link_open(self, link: Link) -> None:
        if link.remote_source.address:
            link.source.address = link.remote_source.address
        if link.remote_target.address:
            link.target.address = link.remote_target.address
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        address = normalize_address(link.remote_target.address if link.is_receiver else link.remote_source.address)
        link.open()
        if address == CBS_ADDRESS:
            if link.is_receiver:
                link.flow(RECEIVER_CREDIT)
            return
        if not self.authorized:
            link.condition = _condition("amqp:unauthorized-access", "put-token required before attaching")
            link.close()
        elif link.is_receiver and address == C2D_ADDRESS:
            link.flow(RECEIVER_CREDIT)
        elif link.is_sender and address == FEEDBACK_ADDRESS:
            self.feedback_links.append(link)
            self._feed_link(link)
        else:
            link.condition = _condition("amqp:not-found", f"unknown address {address}")
            link.close()

    def _on_link_gone(self, link: Link) -> None:
        if link in self.feedback_links:
            self.feedback_links.remove(link)
        for key, item in list(self.outstanding.items()):
            if item.link is link:
                del self.outstanding[key]
                self._abandon_feedback(item.lock_token)

    def _release_outstanding(self) -> None:
        items = list(self.outstanding.values())
        self.outstanding.clear()
        self.feedback_links.clear()
        for item in items:
            self._abandon_feedback(item.lock_token)

    def _abandon_feedback(self, lock_token: str) -> None:
        with contextlib.suppress(LookupError):  # lock already expired and re-queued by tick()
            self.hub.store.feedback_abandon(lock_token)

    def _send(self, link: Link, msg: Message, settled: bool) -> Delivery:
        dlv = link.delivery(self._next_tag())
        link.send(msg.encode())
        link.advance()
        if settled:
            dlv.settle()
        return dlv

    # ---- incoming transfers (CBS requests, C2D sends) -------------------------------------
    def _on_transfer(self, link: Link, dlv: Delivery) -> None:
        if not dlv.readable or dlv.partial:
            return
        data = link.recv(dlv.pending)
        link.advance()
        msg = Message()
        try:
            msg.decode(data)
        except Exception as exc:  # proton raises MessageException/DataException for garbage
            self._settle(dlv, _condition("amqp:decode-error", str(exc)))
            return
        finally:
            link.flow(1)
        address = normalize_address(link.target.address)
        if address == CBS_ADDRESS:
            # uamqp drops a reply that overtakes the request's disposition: settle, flush, then reply.
            self._settle(dlv, None)
            asyncio.get_running_loop().call_soon(self._on_cbs, msg)
            return
        device_id, cloud = to_cloud_message(self.hub, msg)
        try:
            self.hub.store.send(device_id, cloud)
            outcome = None
        except SendError as err:
            outcome = _condition(err.condition, err.description, err.tracking_id)
        delay = self.hub.faults.disposition_delay_s
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._settle_later, dlv, outcome)
        else:
            self._settle(dlv, outcome)

    def _settle_later(self, dlv: Delivery, outcome: Condition | None) -> None:
        if self.closed:
            return
        self._settle(dlv, outcome)
        self.pump()

    @staticmethod
    def _settle(dlv: Delivery, condition: Condition | None) -> None:
        if dlv.settled:
            return
        if condition is None:
            dlv.update(Delivery.ACCEPTED)
        else:
            dlv.local.condition = condition
            dlv.update(Delivery.REJECTED)
        dlv.settle()

    def _authorize(self, token: str) -> bool:
        try:
            self.hub.check_service_token(token)
        except sas.SasError as exc:
            log.info("put-token refused: %s", exc)
            return False
        self.authorized = True
        return True

    def _on_cbs(self, request: Message) -> None:
        props = request.properties or {}
        if props.get("operation") != "put-token":
            status, text = 400, "unsupported operation"
        elif self._authorize(text_of(request.body) or ""):
            status, text = 200, "OK"
        else:
            status, text = 401, "Unauthorized"
        reply = Message(
            address=request.reply_to,
            correlation_id=request.id,
            properties={"status-code": int32(status), "status-description": text},
        )
        self.cbs_replies.append(reply)
        self._flush_cbs()
        self.pump()

    def _flush_cbs(self) -> None:
        link = self._find_sender(CBS_ADDRESS)
        while link is not None and link.credit > 0 and self.cbs_replies:
            self._send(link, self.cbs_replies.popleft(), settled=True)

    def _find_sender(self, address: str) -> Link | None:
        link = self.connection.link_head(Endpoint.LOCAL_ACTIVE | Endpoint.REMOTE_ACTIVE)
        while link is not None:
            if link.is_sender and normalize_address(link.source.address) == address:
                return link
            link = link.next(Endpoint.LOCAL_ACTIVE | Endpoint.REMOTE_ACTIVE)
        return None

    # ---- feedback delivery ----------------------------------------------------------------
    def _feed_link(self, link: Link) -> None:
        if normalize_address(link.source.address) == CBS_ADDRESS:
            self._flush_cbs()
            return
        if link not in self.feedback_links:
            return
        presettled = link.snd_settle_mode == Link.SND_SETTLED
        while link.credit > 0:
            fb = self.hub.store.receive_feedback()
            if fb is None:
                return
            assert fb.lock_token is not None
            dlv = self._send(link, feedback_to_message(self.hub, fb), settled=presettled)
            if presettled:
                self.hub.store.feedback_complete(fb.lock_token)
            else:
                self.outstanding[(link.name, str(dlv.tag))] = _Outstanding(link, fb.lock_token)

    def offer_feedback(self) -> None:
        for link in list(self.feedback_links):
            self._feed_link(link)
        self.pump()

    def _on_disposition(self, link: Link, dlv: Delivery) -> None:
        state = dlv.remote_state or None
        remote_settled = dlv.settled  # proton: `settled` is the peer's settlement
        log.debug("feedback disposition %s settled=%s", state, remote_settled)
        if state is None and not remote_settled:
            return
        item = self.outstanding.pop((link.name, str(dlv.tag)), None)
        if item is None:
            return
        store = self.hub.store
        try:
            if state in (Delivery.ACCEPTED, None):
                store.feedback_complete(item.lock_token)
            elif state == Delivery.REJECTED:
                store.feedback_dead_letter(item.lock_token)
            else:  # RELEASED / MODIFIED: abandon
                store.feedback_abandon(item.lock_token)
        except LookupError as exc:
            log.info("feedback disposition after lock loss: %s", exc)
        if state is not None:
            dlv.update(state)  # answer with the same outcome, then settle (rcv-settle-mode second)
        dlv.settle()
        self._feed_link(link)


class AmqpEndpoint:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.connections: set[AmqpConnection] = set()
        self.server: asyncio.Server | None = None
        self._feedback_scheduled = False
        hub.store.feedback_listeners.append(self._on_feedback)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.serve(StreamChannel(reader, writer))

    async def serve(self, channel: Channel) -> None:
        if self.hub.faults.refusing():
            channel.abort()
            return
        conn = AmqpConnection(self, channel)
        self.connections.add(conn)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)

    def _on_feedback(self) -> None:
        # Called from inside store operations: deliver on the next loop turn, not re-entrantly.
        if not self._feedback_scheduled:
            self._feedback_scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch_feedback)

    def _dispatch_feedback(self) -> None:
        self._feedback_scheduled = False
        for conn in list(self.connections):
            if conn.feedback_links and not conn.closed:
                conn.offer_feedback()

    def drop_connections(self) -> int:
        conns = list(self.connections)
        for conn in conns:
            conn.abort()
        return len(conns)
