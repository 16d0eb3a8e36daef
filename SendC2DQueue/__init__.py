"""SendC2DQueue: the same request as SendC2D, from the Storage queue `c2d-requests`.

Raising hands the message back to the host for a retry (and the poison queue after
maxDequeueCount); `c2d.queue_api` raises only for failures a retry can fix.
"""

import azure.functions as func

from c2d import clients
from c2d.queue_api import handle_queue_request


def main(msg: func.QueueMessage) -> None:
    handle_queue_request(
        msg.get_body(),
        msg.id or "",
        clients.get_sender,
        clients.get_publisher,
        clients.send_settings,
        clients.get_journal,
    )
