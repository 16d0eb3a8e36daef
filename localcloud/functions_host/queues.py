"""Storage-queue triggers: poll a queue (Azurite locally), invoke the function per message, delete on
success, make visible again after `visibilityTimeout` on failure and move a message to
`<queue>-poison` once it has been dequeued `maxDequeueCount` times (host.json extensions.queues)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import re
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from localcloud.azurite import expand_development_storage
from localcloud.functions_host.app import AppError, FunctionApp, FunctionSpec, expand_settings, parse_timespan
from localcloud.functions_host.convert import queue_trigger_metadata, typed_data
from localcloud.functions_host.invocation import FunctionInvoker

_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
# How long a dequeued message stays invisible while the function runs.
PROCESSING_VISIBILITY = 600
MIN_POLL = 0.1


@dataclass(frozen=True)
class QueueOptions:
    """host.json extensions.queues, with the real host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    base64: bool = True

    @classmethod
    def from_app(cls, app: FunctionApp) -> QueueOptions:
        ext = app.extension("queues")
        encoding = str(ext.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise AppError(f"host.json extensions.queues.messageEncoding '{encoding}' must be base64 or none")
        batch_size = int(ext.get("batchSize", 16))
        options = cls(
            batch_size=batch_size,
            new_batch_threshold=int(ext.get("newBatchThreshold", batch_size // 2)),
            max_dequeue_count=int(ext.get("maxDequeueCount", 5)),
            visibility_timeout=parse_timespan(ext.get("visibilityTimeout"), 0.0),
            max_polling_interval=max(MIN_POLL, parse_timespan(ext.get("maxPollingInterval"), 60.0)),
            base64=encoding == "base64",
        )
        if not 1 <= options.batch_size <= 32:
            raise AppError("host.json extensions.queues.batchSize must be between 1 and 32")
        if options.new_batch_threshold < 0:
            raise AppError("host.json extensions.queues.newBatchThreshold must not be negative")
        if options.max_dequeue_count < 1:
            raise AppError("host.json extensions.queues.maxDequeueCount must be at least 1")
        return options


def connection_string(app: FunctionApp, binding: dict[str, Any]) -> str:
    setting = str(binding.get("connection") or "AzureWebJobsStorage")
    value = app.settings.get(setting) or app.settings.get(f"AzureWebJobs{setting}")
    if not value:
        raise AppError(f"storage connection setting '{setting}' is not defined")
    return expand_development_storage(value)


def queue_name(app: FunctionApp, binding: dict[str, Any]) -> str:
    name = expand_settings(str(binding.get("queueName", "")), app.settings).lower()
    if not _QUEUE_NAME.match(name):
        raise AppError(f"invalid queue name '{name}'")
    return name


class QueueListener:
    def __init__(self, host: FunctionInvoker, spec: FunctionSpec) -> None:
        trigger = spec.trigger
        self._host = host
        self._spec = spec
        self.options = QueueOptions.from_app(host.app)
        self.queue = queue_name(host.app, trigger)
        self._conn = connection_string(host.app, trigger)
        self._poison_name = f"{self.queue}-poison"

    def _decode(self, msg: QueueMessage) -> bytes:
        raw = msg.content if isinstance(msg.content, str) else ""
        if self.options.base64:
            return base64.b64decode(raw, validate=True)
        return raw.encode()

    def _metadata(self, msg: QueueMessage, body: str | None) -> dict[str, Any]:
        return queue_trigger_metadata(
            self._host.protos,
            message_id=msg.id,
            dequeue_count=int(msg.dequeue_count or 0),
            inserted=msg.inserted_on,
            expires=msg.expires_on,
            next_visible=msg.next_visible_on,
            pop_receipt=msg.pop_receipt or "",
            body=body,
        )

    async def _to_poison(self, client: QueueClient, poison: QueueClient, msg: QueueMessage, why: str) -> None:
        self._host.log.write(
            f"Message has reached MaxDequeueCount of {self.options.max_dequeue_count} or cannot be decoded "
            f"({why}). Moving message '{msg.id}' to queue '{self._poison_name}'."
        )
        with contextlib.suppress(ResourceExistsError):
            await poison.create_queue()
        await poison.send_message(msg.content)  # same stored text, same encoding as the original
        await client.delete_message(msg)

    async def _process(self, client: QueueClient, poison: QueueClient, msg: QueueMessage) -> None:
        if (msg.dequeue_count or 0) > self.options.max_dequeue_count:
            await self._to_poison(client, poison, msg, "dequeue count")
            return
        try:
            body = self._decode(msg)
        except (binascii.Error, ValueError):
            await self._to_poison(client, poison, msg, "not valid base64")
            return
        protos = self._host.protos
        text: str | None
        try:
            text = body.decode("utf-8")
            payload = typed_data(protos, text)
        except UnicodeDecodeError:
            text = None
            payload = typed_data(protos, body)
        reason = f"New queue message detected on '{self.queue}'."
        inputs = {self._spec.trigger["name"]: payload}
        result = await self._host.invoke(self._spec, inputs, self._metadata(msg, text), reason)
        if result.ok:
            await client.delete_message(msg)
        elif (msg.dequeue_count or 0) >= self.options.max_dequeue_count:
            await self._to_poison(client, poison, msg, "function failed")
        else:
            await client.update_message(msg, visibility_timeout=int(self.options.visibility_timeout))

    async def _fetch(self, client: QueueClient) -> list[QueueMessage]:
        messages: list[QueueMessage] = []
        try:
            pager = client.receive_messages(
                messages_per_page=self.options.batch_size,
                max_messages=self.options.batch_size,
                visibility_timeout=PROCESSING_VISIBILITY,
            )
            async for msg in pager:
                messages.append(msg)
        except ResourceNotFoundError:
            return []  # the queue does not exist yet: keep polling, as the real listener does
        return messages

    def _handled(self, msg: QueueMessage, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._host.log.write(f"{self._spec.name}: handling message '{msg.id}' failed: {task.exception()!r}")

    async def run(self) -> None:
        """Fetch `batchSize` messages whenever at most `newBatchThreshold` are still being processed."""
        delay = MIN_POLL
        warned = False
        in_flight: set[asyncio.Task[None]] = set()
        async with (
            QueueClient.from_connection_string(self._conn, self.queue) as client,
            QueueClient.from_connection_string(self._conn, self._poison_name) as poison,
        ):
            try:
                while True:
                    if len(in_flight) > self.options.new_batch_threshold:
                        await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                        continue
                    try:
                        messages = await self._fetch(client)
                        warned = False
                    except AzureError as exc:
                        if not warned:
                            self._host.log.write(f"{self._spec.name}: cannot read queue '{self.queue}': {exc}")
                            warned = True
                        messages = []
                    for msg in messages:
                        task = asyncio.create_task(self._process(client, poison, msg))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                        task.add_done_callback(functools.partial(self._handled, msg))
                    if messages:
                        delay = MIN_POLL
                        continue
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.options.max_polling_interval)
            finally:
                for task in in_flight:
                    task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)
