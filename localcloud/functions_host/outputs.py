"""Storage-queue output bindings: messages a function sets on a `queue` output are sent after it succeeds."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from localcloud.functions_host.app import FunctionApp, FunctionSpec
from localcloud.functions_host.queues import QueueOptions, connection_string, queue_name


def _messages(data: Any) -> list[bytes]:
    """TypedData of a queue output -> message bodies (a JSON array is one message per item)."""
    kind = data.WhichOneof("data")
    if kind == "string":
        return [data.string.encode()]
    if kind == "bytes":
        return [data.bytes]
    if kind == "json":
        value = json.loads(data.json)
        items = value if isinstance(value, list) else [value]
        result = []
        for item in items:
            if isinstance(item, dict) and "body" in item:
                item = item["body"]
            result.append(item.encode() if isinstance(item, str) else json.dumps(item).encode())
        return result
    if kind is None:
        return []
    raise ValueError(f"unsupported queue output data '{kind}'")


def queue_outputs(spec: FunctionSpec, response: Any) -> list[tuple[dict[str, Any], Any]]:
    """(binding, TypedData) for every queue output the invocation set."""
    found = []
    for binding in spec.bindings:
        if binding["type"] != "queue" or binding["direction"] != "out":
            continue
        if binding["name"] == "$return":
            data = response.return_value if response.HasField("return_value") else None
        else:
            data = next((o.data for o in response.output_data if o.name == binding["name"]), None)
        if data is not None:
            found.append((binding, data))
    return found


async def send_queue_outputs(app: FunctionApp, spec: FunctionSpec, response: Any) -> int:
    """Send the invocation's queue outputs; returns how many messages were sent."""
    encode = QueueOptions.from_app(app).base64
    sent = 0
    for binding, data in queue_outputs(spec, response):
        bodies = _messages(data)
        if not bodies:
            continue
        async with QueueClient.from_connection_string(
            connection_string(app, binding), queue_name(app, binding)
        ) as client:
            with contextlib.suppress(ResourceExistsError):
                await client.create_queue()
            for body in bodies:
                text = base64.b64encode(body).decode() if encode else body.decode()
                await client.send_message(text)
                sent += 1
    return sent
