"""Values and small helpers for unit tests that replace the c2d adapters."""

from __future__ import annotations

from unittest.mock import Mock

from c2d.messages import C2DMessage

#: Looks like a real key (base64) so leak checks are meaningful; it opens nothing.
FAKE_KEY = "c2VjcmV0LWtleS1ub3QtcmVhbC0wMTIzNDU2Nzg5"
SERVICE_CS = f"HostName=unit.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey={FAKE_KEY}"
SB_CS = f"Endpoint=sb://unit.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={FAKE_KEY}"


def sent_messages(sender: Mock) -> list[C2DMessage]:
    return [m for call in sender.send_many.call_args_list for m in call.args[0]]
