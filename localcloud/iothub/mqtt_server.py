"""Device MQTT endpoint (TLS): CONNECT with device SAS, C2D delivery as QoS 1 PUBLISH, PUBACK = complete.

Unacknowledged messages go back to the queue when the connection ends (counting a delivery) and are
sent again on the next connection. Persistent sessions (clean_session=0) keep the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import urllib.parse
from dataclasses import dataclass, field

from localcloud import sas

from . import mqtt_codec as codec
from .channel import Channel, StreamChannel
from .hub import Hub
from .store import CloudMessage, LockError, iso_utc

log = logging.getLogger(__name__)

CONNACK_NOT_AUTHORIZED = 5
CONNACK_BAD_CLIENT_ID = 2
CONNECT_TIMEOUT_S = 10.0


def devicebound_topic(msg: CloudMessage) -> str:
    """`devices/<id>/messages/devicebound/<URL-encoded property bag>` as IoT Hub sends it."""
    pairs: list[tuple[str, str]] = []
    for key, value in (
        ("$.mid", msg.message_id),
        ("$.cid", msg.correlation_id),
        ("$.uid", msg.user_id),
        ("$.ct", msg.content_type),
        ("$.ce", msg.content_encoding),
        ("$.exp", iso_utc(msg.expires_at)),
        ("$.to", msg.to or f"/devices/{msg.device_id}/messages/devicebound"),
        ("iothub-ack", msg.ack if msg.ack != "none" else None),
    ):
        if value is not None:
            pairs.append((key, value))
    pairs.extend(msg.app_properties.items())
    bag = "&".join(f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in pairs)
    return f"devices/{urllib.parse.quote(msg.device_id, safe='')}/messages/devicebound/{bag}"


@dataclass
class Session:
    subscribed: bool = False


@dataclass(eq=False)
class MqttConnection:
    endpoint: MqttEndpoint
    device_id: str
    session: Session
    writer: Channel
    clean_session: bool = False
    inflight: dict[int, str] = field(default_factory=dict)  # packet id -> lock token
    closed: bool = False
    _next_id: int = 0

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight:
                return self._next_id
        raise RuntimeError("no free packet id")

    def deliver(self) -> None:
        store = self.endpoint.hub.store
        limit = self.endpoint.hub.store.limits.mqtt_max_inflight
        while not self.closed and self.session.subscribed and len(self.inflight) < limit:
            msg = store.receive(self.device_id, lock_s=None)
            if msg is None:
                return
            assert msg.lock_token is not None
            pid = self._packet_id()
            self.inflight[pid] = msg.lock_token
            self.writer.write(codec.publish(devicebound_topic(msg), msg.body, pid))

    def on_puback(self, packet_id: int) -> None:
        lock = self.inflight.pop(packet_id, None)
        if lock is None:
            return
        try:
            self.endpoint.hub.store.complete(self.device_id, lock)
        except LockError as exc:
            log.info("PUBACK after lock loss: %s", exc)
        self.deliver()

    def release_inflight(self) -> None:
        locks, self.inflight = list(self.inflight.values()), {}
        for lock in locks:
            with contextlib.suppress(LockError):
                self.endpoint.hub.store.abandon(self.device_id, lock)

    def abort(self) -> None:
        self.closed = True
        self.writer.abort()


def _is_devicebound(topic_filter: str, device_id: str) -> bool:
    return topic_filter.startswith(f"devices/{device_id}/messages/devicebound/")


class MqttEndpoint:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.sessions: dict[str, Session] = {}
        self.active: dict[str, MqttConnection] = {}
        self._pending: set[str] = set()
        hub.store.c2d_listeners.append(self._on_c2d)

    def _on_c2d(self, device_id: str) -> None:
        if device_id in self.active and device_id not in self._pending:
            self._pending.add(device_id)
            asyncio.get_running_loop().call_soon(self._dispatch, device_id)

    def _dispatch(self, device_id: str) -> None:
        self._pending.discard(device_id)
        conn = self.active.get(device_id)
        if conn is not None:
            conn.deliver()

    def drop_connections(self) -> int:
        conns = list(self.active.values())
        for conn in conns:
            conn.abort()
        return len(conns)

    def _authenticate(self, connect: codec.Connect) -> int:
        device_id = connect.client_id
        if not device_id:
            return CONNACK_BAD_CLIENT_ID
        user_parts = (connect.username or "").split("/")
        if len(user_parts) < 2 or user_parts[1] != device_id:
            return CONNACK_NOT_AUTHORIZED
        try:
            self.hub.auth.check_device_token(connect.password or "", device_id)
        except sas.SasError as exc:
            log.info("MQTT CONNECT refused for %s: %s", device_id, exc)
            return CONNACK_NOT_AUTHORIZED
        return 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.serve(StreamChannel(reader, writer))

    async def serve(self, channel: Channel) -> None:
        reader = writer = channel
        if self.hub.faults.refusing():
            channel.abort()
            return
        conn: MqttConnection | None = None
        try:
            first = await asyncio.wait_for(codec.read_packet(reader), CONNECT_TIMEOUT_S)
            if first.type != codec.PacketType.CONNECT:
                return
            connect = codec.parse_connect(first.body)
            code = self._authenticate(connect)
            if code:
                writer.write(codec.connack(False, code))
                await writer.drain()
                return
            conn = self._open_session(connect, writer)
            await self._serve(conn, reader, connect.keep_alive)
        except (asyncio.IncompleteReadError, OSError, codec.MqttProtocolError, struct.error, UnicodeDecodeError) as exc:
            log.debug("mqtt connection ended: %s", exc)
        finally:
            if conn is not None:
                conn.closed = True
                if self.active.get(conn.device_id) is conn:
                    del self.active[conn.device_id]
                conn.release_inflight()
                if conn.clean_session and self.sessions.get(conn.device_id) is conn.session:
                    del self.sessions[conn.device_id]  # a clean session ends with its connection
            writer.close()

    def _open_session(self, connect: codec.Connect, writer: Channel) -> MqttConnection:
        device_id = connect.client_id
        old = self.active.pop(device_id, None)
        if old is not None:  # IoT Hub keeps one connection per device: the newest wins
            old.abort()
            old.release_inflight()
        present = not connect.clean_session and device_id in self.sessions
        if connect.clean_session or device_id not in self.sessions:
            self.sessions[device_id] = Session()
        conn = MqttConnection(self, device_id, self.sessions[device_id], writer, connect.clean_session)
        self.active[device_id] = conn
        writer.write(codec.connack(present, 0))
        conn.deliver()
        return conn

    async def _serve(self, conn: MqttConnection, reader: Channel, keep_alive: int) -> None:
        timeout = keep_alive * 1.5 if keep_alive else None
        writer = conn.writer
        while not conn.closed:
            await writer.drain()
            packet = await asyncio.wait_for(codec.read_packet(reader), timeout)
            ptype = packet.type
            if ptype == codec.PacketType.PUBACK:
                conn.on_puback(codec.parse_packet_id(packet.body))
            elif ptype == codec.PacketType.SUBSCRIBE:
                pid, topics = codec.parse_subscribe(packet.body)
                granted = []
                for topic, qos in topics:
                    if _is_devicebound(topic, conn.device_id):
                        conn.session.subscribed = True
                    granted.append(min(qos, 1))
                writer.write(codec.suback(pid, granted))
                conn.deliver()
            elif ptype == codec.PacketType.UNSUBSCRIBE:
                pid, filters = codec.parse_unsubscribe(packet.body)
                if any(_is_devicebound(t, conn.device_id) for t in filters):
                    conn.session.subscribed = False
                writer.write(codec.unsuback(pid))
            elif ptype == codec.PacketType.PUBLISH:
                pub = codec.parse_publish(packet)  # telemetry etc.: acknowledged and dropped
                if pub.qos and pub.packet_id is not None:
                    writer.write(codec.puback(pub.packet_id))
            elif ptype == codec.PacketType.PINGREQ:
                writer.write(codec.pingresp())
            elif ptype == codec.PacketType.DISCONNECT:
                return
            else:
                raise codec.MqttProtocolError(f"unexpected packet type {ptype}")
