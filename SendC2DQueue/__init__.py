"""SendC2DQueue: the same request as SendC2D, from the Storage queue `c2d-requests`.

Raising hands the message back to the host for a retry (and the poison queue after
maxDequeueCount); `c2d.queue_api` raises only for failures a retry can fix.
"""

import azure.functions as func

from c2d import clients
from c2d.queue_api import QueueDependencies, handle_queue_request


def main(msg: func.QueueMessage) -> None:
    dependencies = QueueDependencies(
        sender=clients.get_sender,
        publisher=clients.get_publisher,
        send_settings=clients.send_settings,
        journal=clients.get_journal,
        status_store=clients.get_status_store,
        registry=clients.get_registry,
        status_settings=clients.status_settings,
    )
    handle_queue_request(msg.get_body(), msg.id or "", dependencies)
