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
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Self

import uamqp
from azure.core.credentials import AccessToken
from azure.core.exceptions import AzureError, ClientAuthenticationError
from uamqp import constants as amqp_constants
from uamqp import errors as amqp_errors

from c2d.config import IoTHubSettings, sdk_log_level
from c2d.errors import (
    C2DError,
    DeviceNotFound,
    DeviceQueueFull,
    MessageTooLarge,
    OutcomeUnknown,
    Rejected,
    SenderBusy,
    Throttled,
    Unauthorized,
    Unavailable,
)
from c2d.messages import C2DMessage, SendResult

logger = logging.getLogger(__name__)
# uamqp logs every connection state change at INFO; in a Functions app that floods Application
# Insights. Its warnings and errors still come through. C2D_SDK_LOG_LEVEL=INFO brings the rest back.
logging.getLogger("uamqp").setLevel(sdk_log_level())

AAD_SCOPE = "https://iothubs.azure.net/.default"
TRACKING_ID = b"com.microsoft:tracking-id"
#: Characters the C# service SDK (WebUtility.UrlEncode) leaves as they are in a device id in `to`.
_DEVICE_ID_SAFE = "!*()"

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


def sas_token(hostname: str, policy_name: str, key: str, lifetime_s: int = 3600) -> AccessToken:
    """IoT Hub service SAS token: HMAC-SHA256 of "<host>\\n<expiry>" with the policy key."""
    expiry = int(time.time() + lifetime_s)
    signature = hmac.new(base64.b64decode(key), f"{hostname}\n{expiry}".encode(), hashlib.sha256).digest()
    token = "SharedAccessSignature sr={}&sig={}&se={}&skn={}".format(
        hostname, urllib.parse.quote(base64.b64encode(signature), safe=""), expiry, policy_name
    )
    return AccessToken(token, expiry)


def device_address(device_id: str) -> str:
    """The C2D `to` address. Device ids may hold % # ? + and more: IoT Hub URL-decodes the path."""
    return f"/devices/{urllib.parse.quote(device_id, safe=_DEVICE_ID_SAFE)}/messages/devicebound"


def _renewal_margin_s(lifetime_s: float) -> float:
    """How long before a token expires the link is rebuilt with a fresh one (C SDK: at half-life)."""
    return min(300.0, lifetime_s / 2)


class _Credentials:
    """Mints the tokens for one link: SAS from the policy key, or Entra ID tokens from one credential.

    The managed-identity credential is built once and reused by every reconnect (it caches tokens).
    """

    def __init__(self, settings: IoTHubSettings, credential_factory: Callable[[], object] | None) -> None:
        self._settings = settings
        self._credential_factory = credential_factory or _default_credential
        self._credential: object | None = None

    def auth(self) -> uamqp.authentication.JWTTokenAuth:
        settings = self._settings
        uri = f"https://{settings.hostname}"
        common = {"uri": uri, "port": settings.amqp_port, "timeout": settings.connect_timeout_s}
        if settings.uses_managed_identity:
            if self._credential is None:
                self._credential = self._credential_factory()
            credential = self._credential

            def get_token() -> AccessToken:
                result = credential.get_token(AAD_SCOPE)  # type: ignore[attr-defined]
                return AccessToken("Bearer " + result.token, result.expires_on)

            # The first token is fetched here, before uamqp builds anything: a credential that cannot
            # get one fails cleanly instead of inside uamqp's half-opened connection.
            tokens = [get_token()]

            def next_token() -> AccessToken:
                return tokens.pop() if tokens else get_token()

            return uamqp.authentication.JWTTokenAuth(
                audience=AAD_SCOPE, get_token=next_token, token_type=b"bearer", **common
            )
        policy_name, key, lifetime = settings.policy_name or "", settings.key or "", settings.token_lifetime_s

        def get_sas() -> AccessToken:
            return sas_token(settings.hostname, policy_name, key, lifetime)

        return uamqp.authentication.JWTTokenAuth(
            audience=uri, get_token=get_sas, token_type=b"servicebus.windows.net:sastoken", **common
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


class _LinkFailure(Exception):
    """A link-level failure, already mapped to the error callers see.

    `reconnect_may_help`: the link was found dead or its token had expired, so a fresh link can
    succeed at once (and, when nothing left the process, retrying cannot duplicate anything).
    """

    def __init__(self, error: C2DError, *, reconnect_may_help: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.reconnect_may_help = reconnect_may_help


def _link_failure(error: BaseException, what: str) -> _LinkFailure:
    """Map whatever uamqp, the credential or the socket raised while using a link."""
    if isinstance(error, amqp_errors.TokenExpired):
        return _LinkFailure(Unavailable(f"the IoT Hub token of the {what} expired"), reconnect_may_help=True)
    if isinstance(error, amqp_errors.AuthenticationException):
        return _LinkFailure(
            Unauthorized(f"IoT Hub refused the app's credentials on the {what} (check the policy name and key)"),
            reconnect_may_help=False,
        )
    if isinstance(error, ClientAuthenticationError):
        # Raised by the managed-identity credential: no identity, no role, or Entra ID refused it.
        return _LinkFailure(
            Unauthorized(f"the app's identity could not get a token for IoT Hub: {type(error).__name__}"),
            reconnect_may_help=False,
        )
    if isinstance(error, AzureError):
        return _LinkFailure(
            Unavailable(f"getting a token for IoT Hub failed: {type(error).__name__}"), reconnect_may_help=False
        )
    if isinstance(error, _ConnectTimeout):
        return _LinkFailure(Unavailable(f"IoT Hub did not open the {what} in time"), reconnect_may_help=False)
    return _LinkFailure(Unavailable(f"IoT Hub connection failed: {type(error).__name__}"), reconnect_may_help=True)


class _ConnectTimeout(TimeoutError):
    pass


#: Everything a link can raise that is about the link, not a bug in this module.
_LINK_ERRORS = (amqp_errors.AMQPError, AzureError, OSError, RuntimeError, ValueError, TimeoutError)


def _to_amqp(message: C2DMessage) -> uamqp.Message:
    properties = uamqp.message.MessageProperties(
        message_id=message.message_id,
        to=device_address(message.device_id),
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        absolute_expiry_time=int(message.expires_at.timestamp() * 1000) if message.expires_at else None,
    )
    application_properties = {"iothub-ack": message.ack, **message.properties}
    return uamqp.Message(body=message.body, properties=properties, application_properties=application_properties)


#: How long the send loop sleeps after a pass that brought no disposition (uamqp never blocks on its socket).
_IDLE_PAUSE_S = 0.0002


class _PipelinedSendClient(uamqp.SendClient):  # type: ignore[misc]
    """uamqp's SendClient without its quadratic pending-message scan.

    uamqp walks every queued message on every connection iteration (`_filter_pending`), to hand new
    ones to the link and to drop settled ones: a 1,000-message fan-out iterates a few hundred times,
    so most of its CPU went into that walk. Here each pass hands over only what was queued since
    the previous pass (and any message uamqp put back to be re-sent), counts settled messages as
    their dispositions arrive, and compacts the list once at least half of it is settled, so
    `messages_pending()` turns False exactly when uamqp's own scan would. Everything else (transfer,
    per-message timeout, disposition callback) is uamqp's own code path, unchanged.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._tracked: list[uamqp.Message] | None = None  # the list the counters below describe
        self._handed_over = 0  # messages at the head of `_tracked` already given to the link
        self._settled = 0  # messages in `_tracked` in a done state
        self._requeued: list[uamqp.Message] = []  # put back to WaitingToBeSent by a retry
        self._progress = 0  # send-complete callbacks so far

    def _on_message_sent(self, message: uamqp.Message, result: object, delivery_state: object = None) -> None:
        try:
            super()._on_message_sent(message, result, delivery_state)
        finally:
            self._progress += 1
            state = message.state
            if state in amqp_constants.DONE_STATES:
                self._settled += 1
            elif state == amqp_constants.MessageState.WaitingToBeSent:
                self._requeued.append(message)

    def wait(self) -> bool:
        """Run the connection until every queued message is settled (uamqp's loop), but sleep a
        moment after a pass that settled nothing instead of spinning: uamqp's socket I/O never
        blocks, so its own loop burns a whole core while IoT Hub works, which on a small Functions
        instance is the core IoT Hub's answers (and every other invocation) would need."""
        running = True
        while running and self.messages_pending():
            settled = self._progress
            running = self.do_work()
            if self._progress == settled:
                time.sleep(_IDLE_PAUSE_S)
        return bool(running)

    def _hand_over(self, message: uamqp.Message) -> None:
        """uamqp's own step for a message waiting to be sent (`SendClient._filter_pending`)."""
        message.state = amqp_constants.MessageState.WaitingForSendAck
        try:
            timeout = self._get_msg_timeout(message)
            if timeout is None:
                self._on_message_sent(message, amqp_constants.MessageSendResult.Timeout)
            else:
                self._transfer_message(message, timeout)
        except (*_LINK_ERRORS, TypeError) as error:  # uamqp fails this one message and goes on
            self._on_message_sent(message, amqp_constants.MessageSendResult.Error, delivery_state=error)

    def _filter_pending(self) -> list[uamqp.Message]:
        pending: list[uamqp.Message] = self._pending_messages
        if pending is not self._tracked:  # replaced by uamqp (new client, redirect): start counting afresh
            self._tracked, self._requeued = pending, []
            self._handed_over = 0
            self._settled = sum(1 for m in pending if m.state in amqp_constants.DONE_STATES)
        requeued, self._requeued = self._requeued, []
        for message in requeued:
            if message.state == amqp_constants.MessageState.WaitingToBeSent:
                self._hand_over(message)
        while self._handed_over < len(pending):
            message = pending[self._handed_over]
            self._handed_over += 1
            if message.state == amqp_constants.MessageState.WaitingToBeSent:
                self._hand_over(message)
        if self._settled * 2 >= len(pending):
            pending = [m for m in pending if m.state not in amqp_constants.DONE_STATES]
            self._tracked, self._handed_over, self._settled = pending, len(pending), 0
        self._waiting_messages = max(0, len(pending) - self._settled)
        return pending


@dataclass
class _Disposition:
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

    The link is rebuilt before its token expires (uamqp renews a token only while it is busy, so an
    idle link would otherwise fail its next use). Opening is bounded by `connect_timeout_s`.
    Subclasses serialize their use of the one client.
    """

    def __init__(self, settings: IoTHubSettings, credential_factory: Callable[[], object] | None) -> None:
        self._settings = settings
        self._credentials = _Credentials(settings, credential_factory)
        self._client: uamqp.AMQPClient | None = None
        self._auth: uamqp.authentication.JWTTokenAuth | None = None
        self._opened_at = 0.0
        self._client_lock = threading.Lock()

    def _new_client(self, auth: uamqp.authentication.JWTTokenAuth) -> uamqp.AMQPClient:
        raise NotImplementedError

    def _token_expiring(self) -> bool:
        if self._auth is None or not self._auth.expires_at:
            return False
        expires_at = float(self._auth.expires_at)
        return time.time() >= expires_at - _renewal_margin_s(expires_at - self._opened_at)

    def _ready_client(self, what: str) -> uamqp.AMQPClient:
        """The open, authenticated client; raises `_LinkFailure` (the client is then reset)."""
        if self._client is not None and self._token_expiring():
            logger.info("IoT Hub token of the %s is about to expire: opening a new link", what)
            self._reset()
        if self._client is not None and not self._still_open(self._client):
            logger.info("IoT Hub closed the idle %s: opening a new link", what)
            self._reset()
        try:
            if self._client is None:
                self._opened_at = time.time()
                self._auth = self._credentials.auth()
                self._client = self._new_client(self._auth)
            client = self._client
            client.open()
            deadline = time.monotonic() + self._settings.connect_timeout_s
            while not client.client_ready():
                if time.monotonic() > deadline:
                    raise _ConnectTimeout(what)
        except _LINK_ERRORS as error:
            self._reset()
            raise _link_failure(error, what) from None
        return client

    @staticmethod
    def _still_open(client: uamqp.AMQPClient) -> bool:
        """Handle what IoT Hub sent while the link was idle before using it: a hub that closed the
        connection (its token expired, it restarted, it dropped idle clients) would otherwise take the
        next transfer into a dead link and leave its fate unknown."""
        try:
            return bool(client.do_work())
        except _LINK_ERRORS:
            return False

    def _reset(self) -> None:
        client, self._client, self._auth = self._client, None, None
        if client is not None:
            try:
                client.close()
            except _LINK_ERRORS as error:
                logger.debug("ignoring error while closing an IoT Hub link: %s", type(error).__name__)

    def close(self) -> None:
        with self._client_lock:
            self._reset()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass
class _SendRequest:
    """One caller's messages waiting to be sent together with everyone else's (group commit)."""

    messages: Sequence[C2DMessage]
    taken: bool = False
    results: list[SendResult] | None = None
    failure: BaseException | None = field(default=None, repr=False)


class C2DSender(_Link):
    """One AMQP connection and link to `/messages/devicebound`, shared by every invocation of the process.

    Concurrent callers are sent together: while one pipelined send is on the link, new requests
    queue; the next send takes all of them (group commit), so a queue batch of 16 costs one round
    trip and cannot starve an HTTP request. A request that waited `busy_timeout_s` without being
    taken is withdrawn and answered `SenderBusy`: nothing is ever sent for a caller that gave up.
    """

    def __init__(
        self, settings: IoTHubSettings, *, credential_factory: Callable[[], object] | None = None
    ) -> None:
        super().__init__(settings, credential_factory)
        self._turn = threading.Condition()
        self._waiting: list[_SendRequest] = []
        self._sending = False

    def send(self, message: C2DMessage) -> None:
        """Send one message; raises its typed `C2DError` on failure."""
        (result,) = self.send_many([message])
        if result.error is not None:
            raise result.error

    def send_many(self, messages: Sequence[C2DMessage]) -> list[SendResult]:
        """Send every message (pipelined with other callers'); one result each, in order."""
        if not messages:
            return []
        request = _SendRequest(messages)
        give_up_at = time.monotonic() + self._settings.busy_timeout_s
        with self._turn:
            self._waiting.append(request)
            while self._sending and not request.taken:
                remaining = give_up_at - time.monotonic()
                if remaining <= 0:
                    self._waiting.remove(request)
                    busy = SenderBusy(
                        f"the IoT Hub link stayed busy for {self._settings.busy_timeout_s:g} s; nothing was sent"
                    )
                    return [SendResult(m.device_id, m.message_id, busy) for m in messages]
                self._turn.wait(remaining)
            if request.taken:  # another caller is sending our messages with theirs
                while request.results is None and request.failure is None:
                    self._turn.wait()
                return self._outcome_of(request)
            batch, self._waiting = self._waiting, []
            for waiting in batch:
                waiting.taken = True
            self._sending = True
        try:
            self._send_batch(batch)
        finally:
            with self._turn:
                self._sending = False
                self._turn.notify_all()
        return self._outcome_of(request)

    @staticmethod
    def _outcome_of(request: _SendRequest) -> list[SendResult]:
        if request.failure is not None:
            raise request.failure
        assert request.results is not None
        return request.results

    def _send_batch(self, batch: list[_SendRequest]) -> None:
        messages = [m for request in batch for m in request.messages]
        try:
            with self._client_lock:
                results = self._send_locked(messages)
        except BaseException as error:  # a bug or an interrupt: every caller must hear of it
            for request in batch:
                request.failure = error
            raise
        start = 0
        for request in batch:
            request.results = results[start:start + len(request.messages)]
            start += len(request.messages)

    def _send_locked(self, messages: Sequence[C2DMessage]) -> list[SendResult]:
        results, nothing_left, reconnect_may_help = self._attempt(messages)
        if nothing_left and reconnect_may_help:
            # The link was found dead (e.g. the hub dropped the idle connection) or its token had
            # expired before any message went out: one retry on a fresh link cannot duplicate anything.
            logger.info("IoT Hub link was unusable before sending; retrying once on a new link")
            results, _, _ = self._attempt(messages)
        return results

    def _attempt(self, messages: Sequence[C2DMessage]) -> tuple[list[SendResult], bool, bool]:
        """One pass on the current link: results, whether no message left this process, and
        whether a fresh link may succeed."""
        try:
            client = self._ready_client("C2D send link")
        except _LinkFailure as not_ready:
            unsent = [SendResult(m.device_id, m.message_id, not_ready.error) for m in messages]
            return unsent, True, not_ready.reconnect_may_help

        # Queued only once the link is ready, so msg_timeout counts from sending, not from connecting.
        dispositions = [_Disposition() for _ in messages]
        amqp_messages = []
        for disposition, message in zip(dispositions, messages, strict=True):
            amqp_message = _to_amqp(message)
            amqp_message.on_send_complete = disposition.callback(message.device_id)
            amqp_messages.append(amqp_message)
        failure: _LinkFailure | None = None
        try:
            for amqp_message in amqp_messages:
                client.queue_message(amqp_message)
            client.send_all_messages(close_on_done=False)
        except _LINK_ERRORS as link_error:
            failure = _link_failure(link_error, "C2D send link")
            logger.warning("IoT Hub send link failed, it will be rebuilt: %s", type(link_error).__name__)

        results: list[SendResult] = []
        nothing_left = True
        for disposition, message, amqp_message in zip(dispositions, messages, amqp_messages, strict=True):
            error = disposition.error
            in_flight = not disposition.done and amqp_message.state == amqp_constants.MessageState.WaitingForSendAck
            if in_flight:
                error = OutcomeUnknown(
                    f"the connection to IoT Hub was lost before it confirmed the message to {message.device_id}"
                )
            elif not disposition.done:  # never left this process: safe to report as not sent
                error = failure.error if failure else Unavailable("IoT Hub connection failed before sending")
            if in_flight or (disposition.done and not disposition.unsent):
                nothing_left = False
            results.append(SendResult(message.device_id, message.message_id, error))
        if failure is not None or any(isinstance(r.error, (Unavailable, OutcomeUnknown)) for r in results):
            # Also drops whatever uamqp still holds for this client, so nothing pending is sent later.
            self._reset()
        reconnect_may_help = failure.reconnect_may_help if failure else any(
            isinstance(r.error, Unavailable) for r in results
        )
        return results, nothing_left, reconnect_may_help

    def _new_client(self, auth: uamqp.authentication.JWTTokenAuth) -> uamqp.SendClient:
        return _PipelinedSendClient(
            target=_address(self._settings, "/messages/devicebound"),
            auth=auth,
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
    #: Earlier deliveries of this message (IoT Hub drops it after its feedback maxDeliveryCount, 10 by default).
    delivery_count: int
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
        except _LINK_ERRORS as error:
            # The lock is lost with the link: IoT Hub redelivers the message after its lock expires.
            raise Unavailable(f"could not {action} feedback: {type(error).__name__}") from None


def feedback_body(message: uamqp.Message) -> bytes:
    """The message's data sections joined; b"" for a message with no data body (it is then
    rejected as malformed by the drain instead of failing every run)."""
    try:
        sections = message.get_data()
        return b"".join(bytes(section) for section in sections or ())
    except (TypeError, ValueError, AttributeError, amqp_errors.AMQPError):
        return b""


#: How long the feedback client waits when a pass over the connection brought no message (uamqp: 50 ms).
_RECEIVE_BACKOFF_S = 0.002


class _FeedbackClient(uamqp.ReceiveClient):  # type: ignore[misc]
    """uamqp's ReceiveClient with a 2 ms instead of a 50 ms back-off between passes that bring nothing.

    uamqp sleeps 50 ms whenever one pass over the connection completed no message, and a feedback message
    (up to 64 records, ~13 KB) often takes a few passes to arrive: in a drain, those sleeps were a fifth of
    the time. Receive timeouts are unchanged: `receive_message_batch` enforces its own deadline.
    """

    def _client_run(self) -> bool:
        before = self._received_messages.qsize()
        self._was_message_received = True  # skips uamqp's own 50 ms sleep; the back-off is below
        running = bool(super()._client_run())
        if self._received_messages.qsize() == before:
            time.sleep(_RECEIVE_BACKOFF_S)
        return running


class FeedbackReceiver(_Link):
    """Receiver on `/messages/servicebound/feedback` with explicit settlement (peek-lock).

    The link is open only while a drain runs: `close()` it at the end of each run, so no credit is
    left on the endpoint and no feedback sits prefetched and locked (its lock running out would count
    a delivery) while the function is idle.
    """

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
        with self._client_lock:
            try:
                client = self._ready_client("feedback link")
            except _LinkFailure as failure:
                raise failure.error from None
            try:
                batch = client.receive_message_batch(
                    max_batch_size=min(max_messages, self._prefetch), timeout=max(1, int(timeout_s * 1000))
                )
            except _LINK_ERRORS as error:
                self._reset()
                raise _link_failure(error, "feedback link").error from None
        return [self._wrap(message) for message in batch]

    @staticmethod
    def _wrap(message: uamqp.Message) -> FeedbackMessage:
        annotations = message.annotations or {}
        enqueued = annotations.get(b"iothub-enqueuedtime") or annotations.get("iothub-enqueuedtime")
        enqueued_ms = int(enqueued.timestamp() * 1000) if enqueued is not None and hasattr(enqueued, "timestamp") else (
            int(enqueued) if isinstance(enqueued, int) else None
        )
        header = message.header
        deliveries = int(header.delivery_count or 0) if header is not None else 0
        return FeedbackMessage(
            body=feedback_body(message), enqueued_time_ms=enqueued_ms, delivery_count=deliveries, _amqp=message
        )

    def _new_client(self, auth: uamqp.authentication.JWTTokenAuth) -> uamqp.ReceiveClient:
        # auto_complete=False: uamqp would otherwise accept each message on arrival, and release or
        # reject would do nothing.
        return _FeedbackClient(
            source=_address(self._settings, "/messages/servicebound/feedback"),
            auth=auth,
            prefetch=self._prefetch,
            auto_complete=False,
            receive_settle_mode=amqp_constants.ReceiverSettleMode.PeekLock,
            error_policy=amqp_errors.ErrorPolicy(max_retries=0),
            keep_alive_interval=120,
            client_name=f"c2d-feedback-{uuid.uuid4()}",
        )
