"""IoT Hub service-side AMQP adapter (uamqp): pipelined C2D sends and the feedback receiver.

Why not `IoTHubRegistryManager.send_c2d_message`: it turns every rejection into a bare
`Exception`, re-sends silently on throttling (duplicates reach the device) and makes one round
trip per message. Here every message carries its own disposition back as a typed `C2DError`,
retries are off (`ErrorPolicy(max_retries=0)`), and a fan-out is queued on one link and sent
together. uamqp is in maintenance mode: keep it inside this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Self

import uamqp
from azure.core.credentials import AccessToken
from uamqp import constants as amqp_constants
from uamqp import errors as amqp_errors

from c2d.config import IoTHubSettings
from c2d.errors import (
    C2DError,
    DeviceNotFound,
    DeviceQueueFull,
    MessageTooLarge,
    OutcomeUnknown,
    Rejected,
    Throttled,
    Unauthorized,
    Unavailable,
)
from c2d.messages import C2DMessage, SendResult

logger = logging.getLogger(__name__)
# uamqp logs every connection state change at INFO; in a Functions app that floods Application
# Insights. Its warnings and errors still come through. C2D_SDK_LOG_LEVEL=INFO brings the rest back.
logging.getLogger("uamqp").setLevel(os.environ.get("C2D_SDK_LOG_LEVEL", "WARNING").upper())

SAS_TOKEN_LIFETIME_S = 3600
AAD_SCOPE = "https://iothubs.azure.net/.default"
TRACKING_ID = b"com.microsoft:tracking-id"

# AMQP error conditions IoT Hub uses on a rejected C2D transfer (wire-notes.md).
_CONDITIONS: dict[str, type[C2DError]] = {
    "amqp:not-found": DeviceNotFound,
    "amqp:resource-limit-exceeded": DeviceQueueFull,
    "amqp:link:message-size-exceeded": MessageTooLarge,
    "com.microsoft:device-container-throttled": Throttled,
    "com.microsoft:server-busy": Throttled,
    "amqp:unauthorized-access": Unauthorized,
    "amqp:internal-error": Unavailable,
    "com.microsoft:timeout": Unavailable,
}


def sas_token(hostname: str, policy_name: str, key: str, lifetime_s: int = SAS_TOKEN_LIFETIME_S) -> AccessToken:
    """IoT Hub service SAS token: HMAC-SHA256 of "<host>\\n<expiry>" with the policy key."""
    expiry = int(time.time() + lifetime_s)
    signature = hmac.new(base64.b64decode(key), f"{hostname}\n{expiry}".encode(), hashlib.sha256).digest()
    token = "SharedAccessSignature sr={}&sig={}&se={}&skn={}".format(
        hostname, urllib.parse.quote(base64.b64encode(signature), safe=""), expiry, policy_name
    )
    return AccessToken(token, expiry)


def _auth(
    settings: IoTHubSettings, credential_factory: Callable[[], object] | None
) -> uamqp.authentication.JWTTokenAuth:
    uri = f"https://{settings.hostname}"
    if settings.uses_managed_identity:
        credential = (credential_factory or _default_credential)()

        def get_token() -> AccessToken:
            result = credential.get_token(AAD_SCOPE)  # type: ignore[attr-defined]
            return AccessToken("Bearer " + result.token, result.expires_on)

        return uamqp.authentication.JWTTokenAuth(
            audience=AAD_SCOPE, uri=uri, get_token=get_token, token_type=b"bearer", port=settings.amqp_port
        )
    policy_name, key = settings.policy_name or "", settings.key or ""

    def get_sas() -> AccessToken:
        return sas_token(settings.hostname, policy_name, key)

    return uamqp.authentication.JWTTokenAuth(
        audience=uri,
        uri=uri,
        get_token=get_sas,
        token_type=b"servicebus.windows.net:sastoken",
        port=settings.amqp_port,
    )


def _default_credential() -> object:
    from azure.identity import DefaultAzureCredential  # imported only for managed-identity setups

    return DefaultAzureCredential()


def _address(settings: IoTHubSettings, path: str) -> str:
    # The port (if not 5671) travels in the auth's TLS settings, not in the link address.
    return f"amqps://{settings.hostname}{path}"


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "value"):  # uamqp ErrorCodes enum
        return _text(value.value)
    return str(value)


def _no_disposition(exception: BaseException) -> bool:
    """uamqp's stand-in for a missing disposition: a bare amqp:unknown-error, no description, no info.

    uamqp reports every message still waiting for its disposition this way when the link or the
    connection goes down. IoT Hub may or may not have enqueued such a message, so it is not a rejection.
    """
    return (
        isinstance(exception, amqp_errors.MessageSendFailed)
        and _text(exception.condition) == _text(amqp_constants.ErrorCodes.UnknownError)
        and not exception.description
        and not exception.info
    )


def error_from_disposition(exception: BaseException | None, device_id: str) -> C2DError:
    """Turn uamqp's per-message failure into the matching typed error."""
    if exception is not None and _no_disposition(exception):
        return OutcomeUnknown(f"the link to IoT Hub closed before IoT Hub confirmed the message to {device_id}")
    if isinstance(exception, amqp_errors.MessageException):
        condition = _text(exception.condition)
        description = _text(exception.description) if exception.description else ""
        info = exception.info if isinstance(exception.info, dict) else {}
        tracking = info.get(TRACKING_ID) or info.get(TRACKING_ID.decode())
        error_type = _CONDITIONS.get(condition)
        if error_type is None:
            return Rejected(
                f"IoT Hub rejected the message to {device_id}: {condition} {description}".strip(),
                tracking_id=_text(tracking) if tracking else None,
            )
        message = {
            DeviceNotFound: f"device {device_id} is not registered in the IoT hub",
            DeviceQueueFull: f"device {device_id} already has the maximum number of pending C2D messages",
            MessageTooLarge: "the message is larger than IoT Hub accepts (64 KB)",
            Throttled: "IoT Hub is throttling cloud-to-device sends",
            Unauthorized: "IoT Hub refused the app's credentials",
            Unavailable: "IoT Hub reported an internal error",
        }[error_type]
        return error_type(message, tracking_id=_text(tracking) if tracking else None)
    if exception is not None and "timed out" in str(exception).lower():
        return OutcomeUnknown(f"IoT Hub did not confirm the message to {device_id} in time")
    return OutcomeUnknown(f"no disposition from IoT Hub for the message to {device_id}")


def _to_amqp(message: C2DMessage) -> uamqp.Message:
    properties = uamqp.message.MessageProperties(
        message_id=message.message_id,
        to=f"/devices/{message.device_id}/messages/devicebound",
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        absolute_expiry_time=int(message.expires_at.timestamp() * 1000) if message.expires_at else None,
    )
    application_properties = {"iothub-ack": message.ack, **message.properties}
    return uamqp.Message(body=message.body, properties=properties, application_properties=application_properties)


@dataclass
class _Outcome:
    """What uamqp reported for one message during one attempt."""

    done: bool = False
    unsent: bool = False
    error: C2DError | None = None

    def callback(self, device_id: str) -> Callable[[object, BaseException | None], None]:
        def on_send_complete(result: object, exception: BaseException | None) -> None:
            self.done = True
            if result != amqp_constants.MessageSendResult.Ok:
                # ClientMessageError: the transfer failed inside this process, nothing reached the wire.
                self.unsent = isinstance(exception, amqp_errors.ClientMessageError)
                self.error = (
                    Unavailable(f"the IoT Hub link failed before the message to {device_id} was sent")
                    if self.unsent
                    else error_from_disposition(exception, device_id)
                )

        return on_send_complete


class _Link:
    """One uamqp client, opened on first use, reused, closed and forgotten after a failure.

    Thread-safe: the Functions worker runs sync invocations on a thread pool, so the subclasses
    serialize their use of the one link under `_lock`.
    """

    def __init__(self, settings: IoTHubSettings, credential_factory: Callable[[], object] | None) -> None:
        self._settings = settings
        self._credential_factory = credential_factory
        self._client: uamqp.AMQPClient | None = None
        self._lock = threading.Lock()

    def _new_client(self) -> uamqp.AMQPClient:
        raise NotImplementedError

    def _open_client(self) -> uamqp.AMQPClient:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except (amqp_errors.AMQPError, OSError, RuntimeError) as error:
                logger.debug("ignoring error while closing a broken IoT Hub link: %s", type(error).__name__)

    def close(self) -> None:
        with self._lock:
            self._reset()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class C2DSender(_Link):
    """One AMQP connection and link to `/messages/devicebound`; sends are serialized on it, each call pipelined."""

    def __init__(
        self, settings: IoTHubSettings, *, credential_factory: Callable[[], object] | None = None
    ) -> None:
        super().__init__(settings, credential_factory)

    def send(self, message: C2DMessage) -> None:
        """Send one message; raises its typed `C2DError` on failure."""
        (result,) = self.send_many([message])
        if result.error is not None:
            raise result.error

    def send_many(self, messages: Sequence[C2DMessage]) -> list[SendResult]:
        """Queue every message on the link, send them together, return one result each, in order."""
        if not messages:
            return []
        with self._lock:
            return self._send_locked(messages)

    def _send_locked(self, messages: Sequence[C2DMessage]) -> list[SendResult]:
        results, nothing_left = self._attempt(messages)
        if nothing_left and any(isinstance(r.error, Unavailable) for r in results):
            # The link was found dead before any message went out (e.g. the hub dropped the idle
            # connection): one retry on a fresh link cannot duplicate anything.
            logger.info("IoT Hub link was dead before sending; retrying once on a new link")
            results, _ = self._attempt(messages)
        return results

    def _attempt(self, messages: Sequence[C2DMessage]) -> tuple[list[SendResult], bool]:
        """One pass on the current link. Returns the results and whether no message left this process."""
        outcomes = [_Outcome() for _ in messages]
        amqp_messages = []
        for outcome, message in zip(outcomes, messages, strict=True):
            amqp_message = _to_amqp(message)
            amqp_message.on_send_complete = outcome.callback(message.device_id)
            amqp_messages.append(amqp_message)
        failure: C2DError | None = None
        try:
            client = self._open_client()
            for amqp_message in amqp_messages:
                client.queue_message(amqp_message)
            client.send_all_messages(close_on_done=False)
        except amqp_errors.AuthenticationException:
            failure = Unauthorized("IoT Hub refused the app's credentials (check the policy name and key)")
        except (amqp_errors.AMQPError, OSError, RuntimeError, ValueError) as error:
            failure = Unavailable(f"IoT Hub connection failed: {type(error).__name__}")
            logger.warning("IoT Hub send link failed, it will be rebuilt: %s", type(error).__name__)

        results, nothing_left = [], True
        for outcome, message, amqp_message in zip(outcomes, messages, amqp_messages, strict=True):
            error = outcome.error
            in_flight = not outcome.done and amqp_message.state == amqp_constants.MessageState.WaitingForSendAck
            if in_flight:
                error = OutcomeUnknown(
                    f"the connection to IoT Hub was lost before it confirmed the message to {message.device_id}"
                )
            elif not outcome.done:  # never left this process: safe to report as not sent
                error = failure or Unavailable("IoT Hub connection failed before the message was sent")
            if in_flight or (outcome.done and not outcome.unsent):
                nothing_left = False
            results.append(SendResult(message.device_id, message.message_id, error))
        if failure is not None or any(isinstance(r.error, (Unavailable, OutcomeUnknown)) for r in results):
            self._reset()
        return results, nothing_left

    def _new_client(self) -> uamqp.SendClient:
        return uamqp.SendClient(
            target=_address(self._settings, "/messages/devicebound"),
            auth=_auth(self._settings, self._credential_factory),
            error_policy=amqp_errors.ErrorPolicy(max_retries=0),
            msg_timeout=int(self._settings.send_timeout_s * 1000),
            keep_alive_interval=120,
            client_name=f"c2d-functions-{uuid.uuid4()}",
        )


@dataclass
class FeedbackMessage:
    """One message from the feedback endpoint: a JSON array of records, settled as a whole."""

    body: bytes
    enqueued_time_ms: int | None
    _amqp: uamqp.Message

    def accept(self) -> None:
        """Complete: IoT Hub deletes it."""
        self._settle("accept", self._amqp.accept)

    def release(self) -> None:
        """Abandon: IoT Hub redelivers it later (counts a delivery)."""
        self._settle("release", self._amqp.release)

    def reject(self, reason: str) -> None:
        """Dead-letter: IoT Hub drops it (used only for messages that can never be processed)."""
        self._settle(
            "reject", lambda: self._amqp.reject(condition="c2d:malformed-feedback", description=reason[:256])
        )

    @staticmethod
    def _settle(action: str, settle: Callable[[], object]) -> None:
        try:
            settle()
        except (amqp_errors.AMQPError, OSError, RuntimeError) as error:
            # The lock is lost with the link: IoT Hub redelivers the message after its lock expires.
            raise Unavailable(f"could not {action} feedback: {type(error).__name__}") from None


class FeedbackReceiver(_Link):
    """Receiver on `/messages/servicebound/feedback` with explicit settlement (peek-lock)."""

    def __init__(
        self,
        settings: IoTHubSettings,
        *,
        prefetch: int = 16,
        credential_factory: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(settings, credential_factory)
        self._prefetch = prefetch

    def receive(self, max_messages: int, timeout_s: float) -> list[FeedbackMessage]:
        """Up to `max_messages` feedback messages; [] if none arrived within `timeout_s`.

        Raises `Unavailable` / `Unauthorized` when the endpoint cannot be reached (the client is rebuilt).
        """
        with self._lock:
            client = self._open_client()
            try:
                batch = client.receive_message_batch(
                    max_batch_size=min(max_messages, self._prefetch), timeout=max(1, int(timeout_s * 1000))
                )
            except amqp_errors.AuthenticationException:
                self._reset()
                raise Unauthorized("IoT Hub refused the app's credentials on the feedback endpoint") from None
            except (amqp_errors.AMQPError, OSError, RuntimeError) as error:
                self._reset()
                raise Unavailable(f"IoT Hub feedback endpoint failed: {type(error).__name__}") from None
        return [self._wrap(message) for message in batch]

    @staticmethod
    def _wrap(message: uamqp.Message) -> FeedbackMessage:
        body = b"".join(bytes(part) for part in message.get_data())
        annotations = message.annotations or {}
        enqueued = annotations.get(b"iothub-enqueuedtime") or annotations.get("iothub-enqueuedtime")
        enqueued_ms = int(enqueued.timestamp() * 1000) if hasattr(enqueued, "timestamp") else enqueued
        return FeedbackMessage(body=body, enqueued_time_ms=enqueued_ms, _amqp=message)

    def _new_client(self) -> uamqp.ReceiveClient:
        # auto_complete=False: uamqp would otherwise accept each message on arrival, and release or
        # reject would do nothing.
        return uamqp.ReceiveClient(
            source=_address(self._settings, "/messages/servicebound/feedback"),
            auth=_auth(self._settings, self._credential_factory),
            prefetch=self._prefetch,
            auto_complete=False,
            receive_settle_mode=amqp_constants.ReceiverSettleMode.PeekLock,
            error_policy=amqp_errors.ErrorPolicy(max_retries=0),
            keep_alive_interval=120,
            client_name=f"c2d-feedback-{uuid.uuid4()}",
        )

