"""Feedback on `/messages/servicebound/feedback`: the feedback queue's messages to the links that read it.

Each delivery locks one feedback message; the client's disposition settles it: accepted completes,
rejected dead-letters, released/modified abandons. Unsettled deliveries are abandoned when their link
or connection ends. Concurrent readers split the queue (the endpoint has no consumer groups).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from itertools import count

from proton import Delivery, Link

from localcloud.amqp.links import ServiceConnection, open_link

from .amqp_messages import feedback_to_message
from .hub import Hub

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Reader:
    """One feedback link and the lock tokens of what it holds unsettled."""

    conn: ServiceConnection
    link: Link
    unsettled: dict[Delivery, str] = field(default_factory=dict)


class FeedbackSender:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._readers: dict[Link, _Reader] = {}
        self._tags = count(1)
        self._offer_scheduled = False
        hub.store.feedback_listeners.append(self._on_feedback_available)

    def attach(self, conn: ServiceConnection, link: Link) -> None:
        open_link(link)
        reader = self._readers[link] = _Reader(conn, link)
        self._deliver(reader)

    def on_link_flow(self, link: Link) -> None:
        reader = self._readers.get(link)
        if reader is not None:
            self._deliver(reader)

    def _deliver(self, reader: _Reader) -> None:
        link = reader.link
        presettled = link.snd_settle_mode == Link.SND_SETTLED
        store = self.hub.store
        while link.credit > 0:
            feedback = store.receive_feedback()
            if feedback is None:
                return
            assert feedback.lock_token is not None
            delivery = link.delivery(str(next(self._tags)))
            link.send(feedback_to_message(self.hub, feedback).encode())
            link.advance()
            if presettled:
                delivery.settle()
                store.feedback_complete(feedback.lock_token)
            else:
                reader.unsettled[delivery] = feedback.lock_token

    def on_disposition(self, link: Link, delivery: Delivery) -> None:
        reader = self._readers.get(link)
        state = delivery.remote_state or None
        if reader is None or (state is None and not delivery.settled):  # proton: `settled` = the peer's
            return
        lock_token = reader.unsettled.pop(delivery, None)
        if lock_token is None:
            return
        store = self.hub.store
        try:
            if state in (Delivery.ACCEPTED, None):
                store.feedback_complete(lock_token)
            elif state == Delivery.REJECTED:
                store.feedback_dead_letter(lock_token)
            else:  # RELEASED / MODIFIED
                store.feedback_abandon(lock_token)
        except LookupError as exc:
            log.info("feedback disposition after its lock was lost: %s", exc)
        if state is not None:
            delivery.update(state)  # answer with the same delivery state, then settle (rcv-settle-mode second)
        delivery.settle()
        self._deliver(reader)

    def detach(self, link: Link) -> None:
        reader = self._readers.pop(link, None)
        if reader is not None:
            self._abandon(reader)

    def forget_connection(self, conn: ServiceConnection) -> None:
        for link, reader in list(self._readers.items()):
            if reader.conn is conn:
                del self._readers[link]
                self._abandon(reader)

    def _abandon(self, reader: _Reader) -> None:
        tokens = list(reader.unsettled.values())
        reader.unsettled.clear()
        for lock_token in tokens:
            with contextlib.suppress(LookupError):  # the lock already expired and tick() re-queued it
                self.hub.store.feedback_abandon(lock_token)

    # ---- new feedback while links wait ------------------------------------------------------
    def _on_feedback_available(self) -> None:
        # Called from inside store operations: deliver on the next loop turn, not re-entrantly.
        if not self._offer_scheduled and self._readers:
            self._offer_scheduled = True
            asyncio.get_running_loop().call_soon(self._offer)

    def _offer(self) -> None:
        self._offer_scheduled = False
        touched: set[ServiceConnection] = set()
        for reader in list(self._readers.values()):
            if not reader.conn.closed:
                self._deliver(reader)
                touched.add(reader.conn)
        for conn in touched:
            conn.flush()
