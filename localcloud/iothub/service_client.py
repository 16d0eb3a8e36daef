"""Service-side AMQP clients on uamqp, built as azure-iot-hub builds them (tests and benchmarks).

    auth = service_auth(hub)                          # JWTTokenAuth with a put-token SAS
    receiver = open_feedback_receiver(hub)            # uamqp ReceiveClient on the feedback endpoint
    messages = receive_feedback(receiver, want_records=3)
"""

from __future__ import annotations

import json
import time
from typing import Any

from localcloud import sas

from .launcher import IoTHubProcess


def service_auth(hub: IoTHubProcess, key: str | None = None, transport_type: Any = None) -> Any:
    """uamqp JWTTokenAuth with a put-token SAS, exactly as azure-iot-hub builds it."""
    import uamqp
    from azure.core.credentials import AccessToken

    policy = hub.config.policies[0]
    host = hub.hostname

    def get_token() -> AccessToken:
        token = sas.make_token(host, key or policy.primary_key, policy.name)
        return AccessToken(token, int(time.time()) + 3600)

    auth = uamqp.authentication.JWTTokenAuth(
        audience="https://" + host,
        uri="https://" + host,
        get_token=get_token,
        token_type=b"servicebus.windows.net:sastoken",
        transport_type=transport_type or uamqp.TransportType.Amqp,
    )
    auth.update_token()
    return auth


def open_feedback_receiver(hub: IoTHubProcess, prefetch: int = 10) -> Any:
    import uamqp

    return uamqp.ReceiveClient(
        f"amqps://{hub.hostname}/messages/servicebound/feedback",
        auth=service_auth(hub),
        prefetch=prefetch,
        auto_complete=False,  # default True accepts every message on arrival, before release()/reject()
    )


def receive_feedback(receiver: Any, want_records: int, timeout_s: float = 30.0, settle: str = "accept") -> list[Any]:
    """Receive feedback messages until `want_records` records arrived; settle each ('accept', 'release',
    'reject' or 'none'). Returns the uamqp messages (records: `feedback_records(message)`)."""
    messages: list[Any] = []
    count = 0
    deadline = time.monotonic() + timeout_s
    while count < want_records and time.monotonic() < deadline:
        for msg in receiver.receive_message_batch(max_batch_size=10, timeout=500):
            messages.append(msg)
            count += len(feedback_records(msg))
            if settle != "none":
                getattr(msg, settle)()
    return messages


def feedback_records(msg: Any) -> list[dict[str, str]]:
    return list(json.loads(b"".join(bytes(part) for part in msg.get_data())))
