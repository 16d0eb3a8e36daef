"""One AMQP connection, sans I/O: bytes in (`feed`), bytes out (to a `ByteSink`), events to the service.

Order of a connection: an 8-byte header; with the SASL header our `SaslServer` runs, then the AMQP
header follows; without it (Node's azure-iothub skips SASL) the AMQP layer starts at once. The AMQP
layer is a proton Transport/Connection/Collector without SASL. The engine answers the `$cbs` and
`$management` nodes itself, keeps each connection's tokens and acts when one expires; every other
link event goes to the service's `LinkHandler`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from enum import Enum, auto
from typing import Protocol, cast

import cproton  # type: ignore[import-untyped]  # proton's C binding (same distribution, no py.typed)
from proton import (
    Collector,
    Condition,
    Connection,
    Delivery,
    Endpoint,
    Link,
    Message,
    ProtonException,
    Session,
    Transport,
)

from .addresses import CBS_NODE, is_management_path, link_path, management_entity
from .cbs import answer_put_token
from .errors import DECODE_ERROR, UNAUTHORIZED_ACCESS, error_condition
from .links import detach_link, open_link, settle, top_up_credit
from .management import read_request, reply_message, unauthorized
from .replies import ReplyLinks
from .sasl import AMQP_HEADER, SASL_HEADER, SaslCredentials, SaslError, SaslServer
from .service import AmqpService, FaultSwitches
from .tokens import ConnectionTokens, ExpiryAction, TokenPolicy, TokenRecord, TokenRefused, TokenStats

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 30.0  # a client that connects but never speaks AMQP is dropped
NODE_CREDIT = 100  # credit on the `$cbs` / `$management` request links


class ByteSink(Protocol):
    """Where a connection's bytes go: an asyncio transport, or a WebSocket channel."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class ConnectionOwner(Protocol):
    """What a connection needs from the endpoint that accepted it."""

    @property
    def service(self) -> AmqpService: ...

    @property
    def faults(self) -> FaultSwitches: ...

    @property
    def stats(self) -> TokenStats: ...

    def now(self) -> float: ...

    def token_policy(self) -> TokenPolicy: ...

    def forget(self, conn: AmqpConnection, *, closed_by_client: bool) -> None: ...


class _Phase(Enum):
    HEADER = auto()
    SASL = auto()
    HEADER_AFTER_SASL = auto()
    AMQP = auto()


class _Node(Enum):
    CBS = auto()
    MANAGEMENT = auto()


# What an event is about, wrapped as proton's own Event does (proton's `wrap` methods are untyped).
def _event_delivery(event: object) -> Delivery:
    return cast(Delivery, Delivery.wrap(cproton.pn_event_delivery(event)))  # type: ignore[no-untyped-call]


def _event_link(event: object) -> Link:
    return cast(Link, Link.wrap(cproton.pn_event_link(event)))  # type: ignore[no-untyped-call]


def _event_session(event: object) -> Session:
    return cast(Session, Session.wrap(cproton.pn_event_session(event)))  # type: ignore[no-untyped-call]


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AmqpConnection:
    def __init__(self, owner: ConnectionOwner, sink: ByteSink, peer: str) -> None:
        self.owner = owner
        self.peer = peer
        self.closed = False  # no more I/O
        self.tokens = ConnectionTokens()
        self._service = owner.service
        self._handler = owner.service.links
        self._sink = sink
        self._loop = asyncio.get_running_loop()
        self._phase = _Phase.HEADER
        self._buffer = b""
        self._sasl: SaslServer | None = None
        self._transport = Transport(Transport.SERVER)
        self._connection = Connection()
        self._connection.container = owner.service.container_id
        self._collector = Collector()
        self._connection.collect(self._collector)
        self._request_links: dict[Link, _Node] = {}  # the client's sender links to $cbs / $management
        self._replies = ReplyLinks()
        self._finished = False  # the service was told the connection is gone
        self._closed_by_client = False  # the client sent an AMQP close (a clean shutdown)
        self._open_timer: asyncio.TimerHandle | None = self._loop.call_later(OPEN_TIMEOUT_S, self._open_timed_out)
        self._token_timer: asyncio.TimerHandle | None = None
        self._heartbeat_timer: asyncio.TimerHandle | None = None

    # ---- bytes in ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            if self._phase is not _Phase.AMQP:
                data = self._negotiate(data)
            if data and self._phase is _Phase.AMQP:
                self._push(data)
        except (SaslError, ProtonException) as exc:
            log.debug("amqp connection from %s broken: %s", self.peer, exc)
            self.abort()
            return
        self.flush()

    def end_of_input(self) -> None:
        """The client closed its sending side."""
        if self.closed:
            return
        if self._phase is not _Phase.AMQP:
            self._hang_up()
            return
        self._transport.close_tail()
        self._process()
        self.flush()

    def lost(self) -> None:
        """The socket is gone: tell the service once."""
        self.closed = True
        if self._finished:
            return
        self._finished = True
        for timer in (self._open_timer, self._token_timer, self._heartbeat_timer):
            if timer is not None:
                timer.cancel()
        self.owner.forget(self, closed_by_client=self._closed_by_client)
        self._handler.on_connection_closed(self)

    def _negotiate(self, data: bytes) -> bytes:
        """Header and SASL phases; returns the bytes that belong to the AMQP layer."""
        self._buffer += data
        while self._phase is not _Phase.AMQP:
            if self._phase is _Phase.SASL:
                assert self._sasl is not None
                reply, rest = self._sasl.feed(self._buffer)
                self._buffer = b""
                if reply:
                    self._sink.write(reply)
                if not self._sasl.done:
                    return b""
                if not self._sasl.accepted:
                    self._hang_up()
                    return b""
                self._buffer = rest
                self._phase = _Phase.HEADER_AFTER_SASL
                continue
            if len(self._buffer) < 8:
                return b""
            header, self._buffer = self._buffer[:8], self._buffer[8:]
            if header == SASL_HEADER and self._phase is _Phase.HEADER and self._service.sasl_mechanisms:
                self._sasl = SaslServer(self._service.sasl_mechanisms, self._verify_sasl)
                self._sink.write(self._sasl.start())
                self._phase = _Phase.SASL
            elif header == AMQP_HEADER:
                self._phase = _Phase.AMQP
                self._transport.bind(self._connection)
                rest, self._buffer = self._buffer, b""
                return header + rest
            else:
                self._sink.write(AMQP_HEADER)  # the protocol we speak, then hang up (AMQP 1.0 section 2.2)
                self._hang_up()
                return b""
        return b""

    def _verify_sasl(self, credentials: SaslCredentials) -> bool:
        authenticate = self._service.plain
        if credentials.password is None or authenticate is None:
            return True
        now = self.owner.now()
        try:
            authorization = authenticate(credentials, now)
        except TokenRefused as exc:
            log.info("SASL PLAIN refused: %s", exc)
            return False
        if authorization is not None:
            self.tokens.put(authorization, now, self.owner.token_policy())
            self.owner.stats.accepted += 1
            self._arm_token_timer()
        return True

    def _push(self, data: bytes) -> None:
        """Into the transport in chunks of its input capacity, processing events in between."""
        transport = self._transport
        view = memoryview(data)
        while view:
            capacity = transport.capacity()
            if capacity < 0:
                break
            if capacity == 0:
                self._process()
                if transport.capacity() == 0:
                    raise ProtonException("transport input stalled")
                continue
            chunk = view[:capacity]
            transport.push(bytes(chunk))
            view = view[len(chunk) :]
            self._process()
        if transport.capacity() < 0:  # the input side closed (the client's close, or a protocol error)
            self._process()
            self.flush()
            self._hang_up()

    # ---- bytes out --------------------------------------------------------------------------
    def flush(self) -> None:
        if self.closed or self._phase is not _Phase.AMQP:
            return
        if self._heartbeat_timer is None:
            self._arm_heartbeat()  # ticks the transport, which may add frames: before writing
        transport = self._transport
        while True:
            pending = transport.pending()
            if pending < 0:  # everything written, the AMQP close included
                self._hang_up()
                return
            if pending == 0:
                break
            out = transport.peek(pending) or b""
            transport.pop(len(out))
            self._sink.write(out)

    def _hang_up(self) -> None:
        if not self.closed:
            self.closed = True
            self._sink.close()

    def abort(self) -> None:
        """Drop the socket without an AMQP close (fault injection, protocol errors)."""
        self.closed = True
        self._sink.abort()

    def close(self, condition: Condition) -> None:
        """Close the connection with an error (the client sees it in its AMQP close)."""
        if self.closed:
            return
        self._connection.condition = condition
        self._connection.close()
        self.flush()

    def _open_timed_out(self) -> None:
        self._open_timer = None
        if self._connection.state & Endpoint.REMOTE_UNINIT:
            log.debug("amqp client %s did not open in %s s", self.peer, OPEN_TIMEOUT_S)
            self.abort()

    def _arm_heartbeat(self) -> None:
        """proton sends the empty frames that keep an idle connection open at the client's idle timeout."""
        now = time.monotonic()
        deadline = self._transport.tick(now)
        if deadline > 0:
            self._heartbeat_timer = self._loop.call_later(max(deadline - now, 0.0), self._heartbeat_due)

    def _heartbeat_due(self) -> None:
        self._heartbeat_timer = None
        self.flush()

    # ---- events -----------------------------------------------------------------------------
    def _process(self) -> None:
        """Dispatch the collector's events. Read through proton's C binding: `Collector.peek()` wraps the
        delivery, link, session, connection and transport of every event, a quarter of the engine's time
        under a stream of transfers; this wraps only what each event needs."""
        collector = self._collector._impl
        while not cproton.isnull(event := cproton.pn_collector_peek(collector)):
            try:
                self._dispatch(cproton.pn_event_type(event), event)
            finally:
                cproton.pn_collector_pop(collector)

    def _dispatch(self, kind: int, event: object) -> None:
        if kind == cproton.PN_DELIVERY:
            delivery = _event_delivery(event)
            link = delivery.link
            if link.is_receiver:
                if delivery.readable and not delivery.partial:
                    payload = link.recv(delivery.pending) or b""
                    link.advance()
                    node = self._request_links.get(link)
                    if link.state & Endpoint.LOCAL_CLOSED:  # sent before the client saw our detach: dropped
                        delivery.settle()
                    elif node is None:
                        self._handler.on_transfer(self, link, delivery, payload)
                    else:
                        self._on_request(node, link, delivery, payload)
            elif delivery.updated and link not in self._request_links:
                self._handler.on_disposition(self, link, delivery)
        elif kind == cproton.PN_LINK_FLOW:
            flowing = _event_link(event)
            if flowing.is_sender and not self._replies.flush_link(flowing):
                self._handler.on_link_flow(self, flowing)
        elif kind == cproton.PN_LINK_REMOTE_OPEN:
            self._on_link_open(_event_link(event))
        elif kind in (cproton.PN_LINK_REMOTE_CLOSE, cproton.PN_LINK_REMOTE_DETACH):
            self._on_link_gone(_event_link(event))
        elif kind == cproton.PN_SESSION_REMOTE_OPEN:
            _event_session(event).open()
        elif kind == cproton.PN_SESSION_REMOTE_CLOSE:
            session = _event_session(event)
            if session.state & Endpoint.LOCAL_ACTIVE:
                session.close()
        elif kind == cproton.PN_CONNECTION_REMOTE_OPEN:
            self._connection.open()
            if self._open_timer is not None:
                self._open_timer.cancel()
                self._open_timer = None
        elif kind == cproton.PN_CONNECTION_REMOTE_CLOSE:
            self._closed_by_client = True
            if self._connection.state & Endpoint.LOCAL_ACTIVE:
                self._connection.close()

    # ---- links ------------------------------------------------------------------------------
    def _on_link_open(self, link: Link) -> None:
        path = link_path(link.remote_target.address if link.is_receiver else link.remote_source.address)
        node = self._node_of(path)
        if node is None:
            self._handler.on_link_open(self, link, path)
            return
        open_link(link)
        if link.is_receiver:
            self._request_links[link] = node
            link.flow(NODE_CREDIT)
        else:
            self._replies.attach(path, link)

    def _node_of(self, path: str) -> _Node | None:
        if path == CBS_NODE:
            return _Node.CBS
        if self._service.management is not None and is_management_path(path):
            return _Node.MANAGEMENT
        return None

    def _on_link_gone(self, link: Link) -> None:
        if self._request_links.pop(link, None) is None and not self._replies.detach(link):
            self.tokens.unbind(link)
            self._handler.on_link_close(self, link)
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.close()

    def authorize(self, link: Link, path: str) -> bool:
        record = self.tokens.covering(path, self.owner.now(), self.owner.token_policy())
        if record is None:
            return False
        self.tokens.bind(link, record)
        return True

    def settle_transfer(self, delivery: Delivery, condition: Condition | None) -> None:
        delay = self.owner.faults.disposition_delay_s
        if delay > 0:
            self._loop.call_later(delay, self._settle_late, delivery, condition)
        else:
            settle(delivery, condition)

    def _settle_late(self, delivery: Delivery, condition: Condition | None) -> None:
        if not self.closed:
            settle(delivery, condition)
            self.flush()

    # ---- $cbs and $management ---------------------------------------------------------------
    def _on_request(self, node: _Node, link: Link, delivery: Delivery, payload: bytes) -> None:
        top_up_credit(link, NODE_CREDIT)
        request = Message()
        try:
            request.decode(payload)
        except ProtonException as exc:  # proton raises MessageException / DataException for garbage
            settle(delivery, error_condition(DECODE_ERROR, str(exc)))
            return
        # uamqp drops a reply that overtakes its request's disposition: settle now, reply on the next turn.
        settle(delivery, None)
        path = link_path(link.target.address)
        if node is _Node.CBS:
            reply = self._answer_put_token(request)
        else:
            reply = self._answer_management(management_entity(path), request)
        self._loop.call_soon(self._send_reply, path, request.reply_to, reply.encode())

    def _answer_put_token(self, request: Message) -> Message:
        result = answer_put_token(
            request,
            self._service.tokens,
            self.tokens,
            now=self.owner.now(),
            policy=self.owner.token_policy(),
            stats=self.owner.stats,
        )
        if result.accepted:
            self._arm_token_timer()
        return result.reply

    def _answer_management(self, entity_path: str, request: Message) -> Message:
        handler = self._service.management
        assert handler is not None
        if self.tokens.covering(entity_path, self.owner.now(), self.owner.token_policy()) is None:
            answer = unauthorized(entity_path)
        else:
            answer = handler.handle(read_request(entity_path, request))
        return reply_message(request, answer)

    def _send_reply(self, node: str, reply_to: str | None, encoded: bytes) -> None:
        if not self.closed:
            self._replies.send(node, reply_to, encoded)
            self.flush()

    # ---- token expiry -----------------------------------------------------------------------
    def _arm_token_timer(self) -> None:
        if self._token_timer is not None:
            self._token_timer.cancel()
            self._token_timer = None
        expiry = self.tokens.next_expiry()
        if expiry is not None and not self.closed:
            self._token_timer = self._loop.call_later(max(expiry - self.owner.now(), 0.0), self.check_tokens)

    def check_tokens(self) -> None:
        """Act on the tokens past their expiry (a timer calls this; so does a change of the token policy)."""
        self._token_timer = None
        if self.closed:
            return
        if self.owner.token_policy().enforce_expiry:
            for record, links in self.tokens.pop_expired(self.owner.now()):
                self.owner.stats.expired += 1
                self._on_token_expired(record, links)
                if self.closed:
                    return
        self._arm_token_timer()
        self.flush()

    def _on_token_expired(self, record: TokenRecord, bound: list[Link]) -> None:
        links = [link for link in bound if link.state & Endpoint.LOCAL_ACTIVE]
        audience = record.authorization.audience
        log.info("CBS token for %s on %s expired with %d link(s) attached", audience, self.peer, len(links))
        condition = error_condition(UNAUTHORIZED_ACCESS, f"the CBS token expired at {_iso(record.expires_at)}")
        if self._service.expiry_action is ExpiryAction.CLOSE_CONNECTION:
            if links:
                self.owner.stats.connections_closed_on_expiry += 1
                self.close(condition)
            return
        for link in links:
            self._handler.on_link_close(self, link)
            detach_link(link, condition)
            self.owner.stats.links_detached_on_expiry += 1
