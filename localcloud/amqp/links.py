"""The seam each service plugs into: `LinkHandler` receives the events of its links, and
`ServiceConnection` is what it may do with the connection they came from.

The engine keeps the `$cbs` and `$management` nodes to itself; every other link is the service's.
The helpers below attach, refuse and settle the way both services do.
"""

from __future__ import annotations

from typing import Protocol

from proton import Condition, Delivery, Link


class ServiceConnection(Protocol):
    @property
    def closed(self) -> bool: ...

    @property
    def peer(self) -> str: ...

    def authorize(self, link: Link, path: str) -> bool:
        """True when a token put on this connection covers `path`; the link is then bound to that token."""
        ...

    def settle_transfer(self, delivery: Delivery, condition: Condition | None) -> None:
        """Accept (condition None) or reject an incoming transfer, late when the disposition-delay fault is on."""
        ...

    def flush(self) -> None:
        """Write what the engine has to send (call after acting outside an event, e.g. from a timer)."""
        ...

    def abort(self) -> None:
        """Drop the socket without an AMQP close."""
        ...


class LinkHandler(Protocol):
    def on_link_open(self, conn: ServiceConnection, link: Link, path: str) -> None:
        """The client attached `link` to `path`: open it (`open_link`) or refuse it (`refuse_link`)."""
        ...

    def on_link_close(self, conn: ServiceConnection, link: Link) -> None:
        """The link ended (client detach, or the engine detached it). May be called twice for one link."""
        ...

    def on_link_flow(self, conn: ServiceConnection, link: Link) -> None:
        """The client gave credit on a link it receives from."""
        ...

    def on_transfer(self, conn: ServiceConnection, link: Link, delivery: Delivery, payload: bytes) -> None:
        """A whole message arrived on a link the client sends on."""
        ...

    def on_disposition(self, conn: ServiceConnection, link: Link, delivery: Delivery) -> None:
        """The client updated a delivery it received."""
        ...

    def on_connection_closed(self, conn: ServiceConnection) -> None:
        """The connection is gone: release what it held."""
        ...


def open_link(link: Link) -> None:
    """Attach our end as the client's mirror: same terminus addresses and settle modes."""
    link.source.copy(link.remote_source)
    link.target.copy(link.remote_target)
    link.snd_settle_mode = link.remote_snd_settle_mode
    link.rcv_settle_mode = link.remote_rcv_settle_mode
    link.open()


def refuse_link(link: Link, condition: Condition) -> None:
    """Attach and at once detach with `condition` (how AMQP refuses a link)."""
    open_link(link)
    link.condition = condition
    link.close()


def detach_link(link: Link, condition: Condition) -> None:
    link.condition = condition
    link.close()


def settle(delivery: Delivery, condition: Condition | None) -> None:
    """Accept, or reject with `condition`, and settle. A transfer the client settled is only settled."""
    if not delivery.settled:  # proton: `settled` is the peer's settlement
        if condition is None:
            delivery.update(Delivery.ACCEPTED)
        else:
            delivery.local.condition = condition
            delivery.update(Delivery.REJECTED)
    delivery.settle()


def top_up_credit(link: Link, window: int) -> None:
    """Give the client back up to `window` credit once half of it is used."""
    if link.credit < window // 2:
        link.flow(window - link.credit)
