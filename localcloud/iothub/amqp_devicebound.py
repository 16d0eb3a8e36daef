"""C2D sends on `/messages/devicebound`: each transfer becomes a message in a device queue, or is
rejected with the condition IoT Hub uses (not-found, queue full, too large, throttled)."""

from __future__ import annotations

from proton import Delivery, Link, Message, ProtonException

from localcloud.amqp.errors import DECODE_ERROR, error_condition
from localcloud.amqp.links import ServiceConnection, open_link, settle, top_up_credit

from .amqp_messages import to_cloud_message
from .hub import Hub
from .store import SendError

CREDIT = 500  # transfers a client may pipeline on one link


class DeviceboundIntake:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # One proton message, decoded into for every transfer (decoding clears it first): the engine
        # runs on one event loop, and `to_cloud_message` copies out everything the hub keeps.
        self._message = Message()

    def attach(self, link: Link) -> None:
        open_link(link)
        link.flow(CREDIT)

    def on_transfer(self, conn: ServiceConnection, link: Link, delivery: Delivery, payload: bytes) -> None:
        top_up_credit(link, CREDIT)
        message = self._message
        try:
            message.decode(payload)
        except ProtonException as exc:  # MessageException / DataException for garbage
            settle(delivery, error_condition(DECODE_ERROR, str(exc)))
            return
        device_id, cloud_message = to_cloud_message(self.hub, message)
        try:
            self.hub.store.send(device_id, cloud_message)
        except SendError as err:
            conn.settle_transfer(delivery, error_condition(err.condition, err.description, err.tracking_id))
            return
        conn.settle_transfer(delivery, None)
