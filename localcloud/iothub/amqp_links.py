"""The hub's AMQP service endpoint on the shared engine (`localcloud.amqp`): which link goes where.

SASL MSSBCBS / PLAIN / ANONYMOUS or none; CBS put-token with a ServiceConnect policy token (the
engine's `$cbs` node); then `/messages/devicebound` (C2D sends) and `/messages/servicebound/feedback`.
When the token that authorised a connection's links expires without renewal, IoT Hub closes the
connection (`amqp:unauthorized-access`).
"""

from __future__ import annotations

from proton import Delivery, Link

from localcloud.amqp.endpoint import AmqpEndpoint
from localcloud.amqp.errors import NOT_FOUND, UNAUTHORIZED_ACCESS, error_condition
from localcloud.amqp.links import ServiceConnection, refuse_link
from localcloud.amqp.sasl import Mechanism
from localcloud.amqp.service import AmqpService
from localcloud.amqp.tokens import ExpiryAction, TokenPolicy

from .amqp_devicebound import DeviceboundIntake
from .amqp_feedback import FeedbackSender
from .amqp_messages import DEVICEBOUND_PATH, FEEDBACK_PATH
from .hub import Hub


class IoTHubLinks:
    """The hub's `LinkHandler`: C2D sends in, feedback out."""

    def __init__(self, hub: Hub) -> None:
        self.devicebound = DeviceboundIntake(hub)
        self.feedback = FeedbackSender(hub)

    def on_link_open(self, conn: ServiceConnection, link: Link, path: str) -> None:
        node = path.lower()
        if not conn.authorize(link, node):
            refuse_link(link, error_condition(UNAUTHORIZED_ACCESS, "put-token required before attaching"))
        elif link.is_receiver and node == DEVICEBOUND_PATH:
            self.devicebound.attach(link)
        elif link.is_sender and node == FEEDBACK_PATH:
            self.feedback.attach(conn, link)
        else:
            refuse_link(link, error_condition(NOT_FOUND, f"unknown address /{node}"))

    def on_link_close(self, conn: ServiceConnection, link: Link) -> None:
        self.feedback.detach(link)

    def on_link_flow(self, conn: ServiceConnection, link: Link) -> None:
        self.feedback.on_link_flow(link)

    def on_transfer(self, conn: ServiceConnection, link: Link, delivery: Delivery, payload: bytes) -> None:
        self.devicebound.on_transfer(conn, link, delivery, payload)

    def on_disposition(self, conn: ServiceConnection, link: Link, delivery: Delivery) -> None:
        self.feedback.on_disposition(link, delivery)

    def on_connection_closed(self, conn: ServiceConnection) -> None:
        self.feedback.forget_connection(conn)


def amqp_endpoint(hub: Hub) -> AmqpEndpoint:
    def token_policy() -> TokenPolicy:
        limits = hub.store.limits
        return TokenPolicy(limits.enforce_token_expiry, limits.max_token_lifetime_s)

    service = AmqpService(
        container_id=hub.config.hub_name,
        sasl_mechanisms=(Mechanism.MSSBCBS, Mechanism.PLAIN, Mechanism.ANONYMOUS),
        links=IoTHubLinks(hub),
        tokens=hub.auth,
        expiry_action=ExpiryAction.CLOSE_CONNECTION,
        plain=hub.auth.sasl_plain,
    )
    return AmqpEndpoint(service, hub.faults, token_policy)
