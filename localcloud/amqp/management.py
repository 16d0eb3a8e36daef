"""`<entity>/$management` request/response plumbing: requests to the service's handler, replies back.

Request: application properties `operation` (and more); body: a map. Reply: `correlation-id` = the
request's `message-id`, application properties `statusCode` (int), `statusDescription` and, on an
error, `errorCondition` (Service Bus spells the reply keys in camel case, unlike `$cbs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from proton import Message, int32

from .errors import UNAUTHORIZED_ACCESS


@dataclass(frozen=True)
class ManagementRequest:
    entity_path: str  # the node's entity: `queue` for `queue/$management`
    operation: str
    body: Any
    message: Message


@dataclass(frozen=True)
class ManagementReply:
    status: int
    description: str
    body: Any = None
    condition: str | None = None


class ManagementHandler(Protocol):
    def handle(self, request: ManagementRequest) -> ManagementReply: ...


def read_request(entity_path: str, message: Message) -> ManagementRequest:
    properties: dict[str, object] = message.properties or {}
    return ManagementRequest(entity_path, str(properties.get("operation", "")), message.body, message)


def unauthorized(entity_path: str) -> ManagementReply:
    return ManagementReply(401, f"Unauthorized access to '{entity_path}'", {}, UNAUTHORIZED_ACCESS)


def reply_message(request: Message, reply: ManagementReply) -> Message:
    properties: dict[str, object] = {"statusCode": int32(reply.status), "statusDescription": reply.description}
    if reply.condition:
        properties["errorCondition"] = reply.condition
        properties["error-condition"] = reply.condition
    return Message(correlation_id=request.id, properties=properties, body=reply.body)
