"""App settings, read from the environment (Function App settings / local.settings.json Values).

Each loader collects every problem before raising one `ConfigurationError`, and never puts a
setting's value in a message: connection strings and keys are secrets.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from c2d.errors import ConfigurationError

DEFAULT_OUTCOME_TOPIC = "c2d-outcomes"
DEFAULT_TTL_SECONDS = 3600
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 172_800


@dataclass(frozen=True)
class IoTHubSettings:
    """Where and how to reach IoT Hub's service endpoint.

    `key` is None when a managed identity (DefaultAzureCredential) is used.
    `amqp_port` is None for the standard 5671; set it only to reach a local emulator on another port.
    """

    hostname: str
    policy_name: str | None = None
    key: str | None = field(default=None, repr=False)
    amqp_port: int | None = None
    send_timeout_s: float = 30.0

    @property
    def uses_managed_identity(self) -> bool:
        return self.key is None

    @classmethod
    def from_connection_string(cls, connection_string: str, **overrides: object) -> IoTHubSettings:
        """Parse `HostName=...;SharedAccessKeyName=...;SharedAccessKey=...` (raises ConfigurationError)."""
        problems: list[str] = []
        parsed = _parse_iothub_connection_string(connection_string, "connection string", problems)
        if problems or parsed is None:
            raise ConfigurationError(problems)
        return cls(**parsed, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ServiceBusSettings:
    """Where outcomes are published. Exactly one of `connection_string` / `namespace` is set."""

    topic: str
    connection_string: str | None = field(default=None, repr=False)
    namespace: str | None = None
    #: Retries the azure-servicebus SDK makes inside one publish call before we give up (and release).
    retry_total: int = 2

    @property
    def uses_managed_identity(self) -> bool:
        return self.connection_string is None


@dataclass(frozen=True)
class SendSettings:
    default_ttl_s: int = DEFAULT_TTL_SECONDS


@dataclass(frozen=True)
class FeedbackSettings:
    #: Longest time one FeedbackProcessor run keeps draining; keep it below the timer period.
    max_drain_s: float = 8.0
    #: How long to wait for a feedback message before concluding the endpoint is drained.
    idle_wait_s: float = 1.0
    #: Feedback messages fetched per receive call (each holds up to 64 records).
    batch_size: int = 16


def _parse_iothub_connection_string(
    value: str, name: str, problems: list[str]
) -> dict[str, object] | None:
    parts = _split_connection_string(value)
    if parts is None:
        problems.append(f"{name} is not of the form Key=Value;Key=Value")
        return None
    missing = [k for k in ("HostName", "SharedAccessKeyName", "SharedAccessKey") if not parts.get(k)]
    if missing:
        problems.append(f"{name} lacks {', '.join(missing)}")
        return None
    if "DeviceId" in parts:
        problems.append(f"{name} is a device connection string; the app needs a service policy (e.g. service)")
        return None
    try:
        base64.b64decode(parts["SharedAccessKey"], validate=True)
    except (binascii.Error, ValueError):
        problems.append(f"{name} has a SharedAccessKey that is not base64")
        return None
    return {
        "hostname": parts["HostName"],
        "policy_name": parts["SharedAccessKeyName"],
        "key": parts["SharedAccessKey"],
    }


def _split_connection_string(value: str) -> dict[str, str] | None:
    parts: dict[str, str] = {}
    for item in value.strip().strip(";").split(";"):
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            return None
        parts[key.strip()] = val.strip()
    return parts


def _int_setting(env: Mapping[str, str], name: str, default: int, lo: int, hi: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(f"{name} must be an integer")
        return default
    if not lo <= value <= hi:
        problems.append(f"{name} must be between {lo} and {hi}")
        return default
    return value


def _float_setting(
    env: Mapping[str, str], name: str, default: float, lo: float, hi: float, problems: list[str]
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{name} must be a number")
        return default
    if not lo <= value <= hi:
        problems.append(f"{name} must be between {lo:g} and {hi:g}")
        return default
    return value


def _iothub(env: Mapping[str, str], problems: list[str]) -> IoTHubSettings | None:
    conn = env.get("IOTHUB_CONNECTION_STRING", "").strip()
    host = env.get("IOTHUB_HOSTNAME", "").strip()
    port = _int_setting(env, "IOTHUB_AMQP_PORT", 0, 1, 65535, problems) or None
    timeout = _float_setting(env, "IOTHUB_SEND_TIMEOUT_SECONDS", 30.0, 1.0, 230.0, problems)
    if conn and host:
        problems.append("set only one of IOTHUB_CONNECTION_STRING and IOTHUB_HOSTNAME")
        return None
    if conn:
        parsed = _parse_iothub_connection_string(conn, "IOTHUB_CONNECTION_STRING", problems)
        if parsed is None:
            return None
        return IoTHubSettings(**parsed, amqp_port=port, send_timeout_s=timeout)  # type: ignore[arg-type]
    if host:
        if "." not in host or "/" in host or ";" in host:
            problems.append("IOTHUB_HOSTNAME must be a host name such as myhub.azure-devices.net")
            return None
        return IoTHubSettings(hostname=host, amqp_port=port, send_timeout_s=timeout)
    problems.append(
        "IOTHUB_CONNECTION_STRING is missing (or set IOTHUB_HOSTNAME to use a managed identity)"
    )
    return None


def _servicebus(env: Mapping[str, str], problems: list[str]) -> ServiceBusSettings | None:
    conn = env.get("SERVICEBUS_CONNECTION", "").strip()
    namespace = env.get("SERVICEBUS__fullyQualifiedNamespace", "").strip()
    topic = env.get("OUTCOME_TOPIC", "").strip() or DEFAULT_OUTCOME_TOPIC
    retries = _int_setting(env, "SERVICEBUS_RETRY_TOTAL", 2, 0, 10, problems)
    if conn and namespace:
        problems.append("set only one of SERVICEBUS_CONNECTION and SERVICEBUS__fullyQualifiedNamespace")
        return None
    if conn:
        parts = _split_connection_string(conn)
        if parts is None or not parts.get("Endpoint", "").startswith("sb://"):
            problems.append("SERVICEBUS_CONNECTION must look like Endpoint=sb://...;SharedAccessKeyName=...;...")
            return None
        if parts.get("EntityPath") and parts["EntityPath"] != topic:
            problems.append("SERVICEBUS_CONNECTION has an EntityPath that differs from OUTCOME_TOPIC")
            return None
        return ServiceBusSettings(topic=topic, connection_string=conn, retry_total=retries)
    if namespace:
        if "." not in namespace or "/" in namespace:
            problems.append(
                "SERVICEBUS__fullyQualifiedNamespace must be a host name such as myns.servicebus.windows.net"
            )
            return None
        return ServiceBusSettings(topic=topic, namespace=namespace, retry_total=retries)
    problems.append(
        "SERVICEBUS_CONNECTION is missing (or set SERVICEBUS__fullyQualifiedNamespace to use a managed identity)"
    )
    return None


def load_iothub_settings(env: Mapping[str, str] | None = None) -> IoTHubSettings:
    problems: list[str] = []
    settings = _iothub(os.environ if env is None else env, problems)
    if problems or settings is None:
        raise ConfigurationError(problems)
    return settings


def load_servicebus_settings(env: Mapping[str, str] | None = None) -> ServiceBusSettings:
    problems: list[str] = []
    settings = _servicebus(os.environ if env is None else env, problems)
    if problems or settings is None:
        raise ConfigurationError(problems)
    return settings


def load_send_settings(env: Mapping[str, str] | None = None) -> SendSettings:
    problems: list[str] = []
    ttl = _int_setting(
        os.environ if env is None else env,
        "C2D_DEFAULT_TTL_SECONDS", DEFAULT_TTL_SECONDS, MIN_TTL_SECONDS, MAX_TTL_SECONDS, problems,
    )
    if problems:
        raise ConfigurationError(problems)
    return SendSettings(default_ttl_s=ttl)


def load_feedback_settings(env: Mapping[str, str] | None = None) -> FeedbackSettings:
    env = os.environ if env is None else env
    problems: list[str] = []
    settings = FeedbackSettings(
        max_drain_s=_float_setting(env, "FEEDBACK_MAX_DRAIN_SECONDS", 8.0, 0.5, 600.0, problems),
        idle_wait_s=_float_setting(env, "FEEDBACK_IDLE_WAIT_SECONDS", 1.0, 0.05, 60.0, problems),
        batch_size=_int_setting(env, "FEEDBACK_BATCH_SIZE", 16, 1, 256, problems),
    )
    if problems:
        raise ConfigurationError(problems)
    return settings


def check_all(env: Mapping[str, str] | None = None) -> list[str]:
    """Every problem in every setting at once (for a startup check or `make` target)."""
    env = os.environ if env is None else env
    problems: list[str] = []
    for loader in (load_iothub_settings, load_servicebus_settings, load_send_settings, load_feedback_settings):
        try:
            loader(env)
        except ConfigurationError as error:
            problems.extend(error.problems)
    return problems
