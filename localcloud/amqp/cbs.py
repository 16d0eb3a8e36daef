"""The `$cbs` node: put-token requests in, status replies out (claims-based security, as Azure's services do it).

Request: application properties `operation=put-token`, `type`, `name` (the audience); body: the token.
Reply: `correlation-id` = the request's `message-id`, `status-code` (int) and `status-description`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from proton import Message, int32

from .tokens import ConnectionTokens, TokenPolicy, TokenRefused, TokenStats, TokenValidator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PutTokenResult:
    reply: Message
    accepted: bool


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def answer_put_token(
    request: Message,
    validator: TokenValidator,
    tokens: ConnectionTokens,
    *,
    now: float,
    policy: TokenPolicy,
    stats: TokenStats,
) -> PutTokenResult:
    """Validate the token of one `$cbs` request, record it on the connection, and build the reply."""
    properties: dict[str, object] = request.properties or {}
    operation = properties.get("operation")
    accepted = False
    if operation != "put-token":
        status, description = 400, f"unsupported CBS operation {operation!r}"
    else:
        try:
            authorization = validator.validate(_text(request.body), now)
        except TokenRefused as exc:
            status, description = 401, str(exc)
            stats.refused += 1
            log.info("CBS put-token for %s refused: %s", properties.get("name"), exc)
        else:
            accepted = True
            status, description = 200, "OK"
            stats.accepted += 1
            if tokens.put(authorization, now, policy):
                stats.renewed += 1
    reply = Message(
        address=request.reply_to,
        correlation_id=request.id,
        properties={"status-code": int32(status), "status-description": description},
    )
    return PutTokenResult(reply, accepted)
