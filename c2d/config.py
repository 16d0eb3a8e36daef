"""App settings, read from the environment (Function App settings / local.settings.json Values).

Each loader collects every problem before raising one `ConfigurationError`, and never puts a
setting's value in a message: connection strings and keys are secrets.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from c2d.errors import ConfigurationError

DEFAULT_OUTCOME_TOPIC = "c2d-outcomes"
DEFAULT_STATUS_TABLE = "c2dstatus"
DEFAULT_TTL_SECONDS = 3600
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 172_800
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
DEFAULT_MAX_FAN_OUT = 1000
MAX_FAN_OUT_LIMIT = 100_000
DEFAULT_SDK_LOG_LEVEL = logging.WARNING


@dataclass(frozen=True)
class IoTHubSettings:
    """Where and how to reach IoT Hub's service endpoint.

    `key` is None when a managed identity (DefaultAzureCredential) is used.
    `amqp_port` is None for the standard 5671; set it only to reach a local emulator on another port.
    Every wait is bounded: a request waits at most `busy_timeout_s` for the one link, then
    `connect_timeout_s` for a (re)connection, then `send_timeout_s` for IoT Hub's confirmation.
    """

    hostname: str
    policy_name: str | None = None
    key: str | None = field(default=None, repr=False)
    amqp_port: int | None = None
    send_timeout_s: float = 30.0
    #: Lifetime of the service SAS tokens the app mints (managed-identity tokens carry their own).
    token_lifetime_s: int = 3600
    connect_timeout_s: float = 10.0
    busy_timeout_s: float = 10.0
    #: Only for a local emulator: the port of IoT Hub's HTTPS (registry) endpoint.
    https_port: int | None = None

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
    #: Larger HTTP bodies are refused with 413 before they are parsed.
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: Most devices one `deviceIds` list (HTTP fan-out) may name. A fan-out holds the one IoT Hub link
    #: while it is sent, so concurrent requests wait for it (at most `busy_timeout_s`).
    max_fan_out: int = DEFAULT_MAX_FAN_OUT


@dataclass(frozen=True)
class StatusSettings:
    """The status endpoints and the status table's upkeep."""

    #: Retry-After of a pending status (how often a workflow should poll).
    poll_s: int = 10
    #: After a message's expiry, how long to wait for its feedback before inferring the outcome.
    feedback_grace_s: int = 300
    retention_days: int = 7
    #: The app's public base URL for status links (default: the URL the request came in on).
    public_base_url: str | None = None
    #: Most devices one query fan-out may select.
    max_query_devices: int = 10_000


@dataclass(frozen=True)
class TableSettings:
    """Where the app keeps its send journal and delivery status: a table in the Functions storage account.

    Exactly one of `connection_string` / `endpoint` is set; with `endpoint` the app authenticates
    with its managed identity (`client_id` selects a user-assigned one).
    """

    table: str = DEFAULT_STATUS_TABLE
    connection_string: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    client_id: str | None = None


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
    timing = {
        "amqp_port": _int_setting(env, "IOTHUB_AMQP_PORT", 0, 1, 65535, problems) or None,
        "send_timeout_s": _float_setting(env, "IOTHUB_SEND_TIMEOUT_SECONDS", 30.0, 1.0, 100.0, problems),
        "token_lifetime_s": _int_setting(env, "IOTHUB_TOKEN_LIFETIME_SECONDS", 3600, 5, 86_400, problems),
        "connect_timeout_s": _float_setting(env, "IOTHUB_CONNECT_TIMEOUT_SECONDS", 10.0, 1.0, 60.0, problems),
        "busy_timeout_s": _float_setting(env, "C2D_SEND_BUSY_TIMEOUT_SECONDS", 10.0, 0.1, 60.0, problems),
        "https_port": _int_setting(env, "IOTHUB_HTTPS_PORT", 0, 1, 65535, problems) or None,
    }
    if conn and host:
        problems.append("set only one of IOTHUB_CONNECTION_STRING and IOTHUB_HOSTNAME")
        return None
    if conn:
        parsed = _parse_iothub_connection_string(conn, "IOTHUB_CONNECTION_STRING", problems)
        if parsed is None:
            return None
        return IoTHubSettings(**parsed, **timing)  # type: ignore[arg-type]
    if host:
        if "." not in host or "/" in host or ";" in host:
            problems.append("IOTHUB_HOSTNAME must be a host name such as myhub.azure-devices.net")
            return None
        return IoTHubSettings(hostname=host, **timing)  # type: ignore[arg-type]
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
    env = os.environ if env is None else env
    problems: list[str] = []
    settings = SendSettings(
        default_ttl_s=_int_setting(
            env, "C2D_DEFAULT_TTL_SECONDS", DEFAULT_TTL_SECONDS, MIN_TTL_SECONDS, MAX_TTL_SECONDS, problems
        ),
        max_request_bytes=_int_setting(
            env, "C2D_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES, 1024, 100 * 1024 * 1024, problems
        ),
        max_fan_out=_int_setting(env, "C2D_MAX_FAN_OUT", DEFAULT_MAX_FAN_OUT, 1, MAX_FAN_OUT_LIMIT, problems),
    )
    if problems:
        raise ConfigurationError(problems)
    return settings


def load_status_settings(env: Mapping[str, str] | None = None) -> StatusSettings:
    env = os.environ if env is None else env
    problems: list[str] = []
    base = env.get("C2D_PUBLIC_BASE_URL", "").strip().rstrip("/") or None
    if base and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", base):
        problems.append("C2D_PUBLIC_BASE_URL must be a URL such as https://myapp.azurewebsites.net")
    settings = StatusSettings(
        poll_s=_int_setting(env, "C2D_STATUS_POLL_SECONDS", 10, 1, 3600, problems),
        feedback_grace_s=_int_setting(env, "C2D_FEEDBACK_GRACE_SECONDS", 300, 0, 86_400, problems),
        retention_days=_int_setting(env, "C2D_STATUS_RETENTION_DAYS", 7, 1, 365, problems),
        public_base_url=base,
        max_query_devices=_int_setting(env, "C2D_MAX_QUERY_DEVICES", 10_000, 1, 100_000, problems),
    )
    if problems:
        raise ConfigurationError(problems)
    return settings


#: Azure Table names: 3-63 letters and digits, starting with a letter.
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


def load_table_settings(env: Mapping[str, str] | None = None) -> TableSettings:
    """The send journal's table, in the account `AzureWebJobsStorage` (or its identity-based form) names."""
    env = os.environ if env is None else env
    problems: list[str] = []
    table = env.get("C2D_STATUS_TABLE", "").strip() or DEFAULT_STATUS_TABLE
    if not _TABLE_NAME.fullmatch(table):
        problems.append("C2D_STATUS_TABLE must be 3 to 63 letters or digits, starting with a letter")
    conn = env.get("AzureWebJobsStorage", "").strip()
    endpoint = env.get("AzureWebJobsStorage__tableServiceUri", "").strip()
    account = env.get("AzureWebJobsStorage__accountName", "").strip()
    client_id = env.get("AzureWebJobsStorage__clientId", "").strip() or None
    if not endpoint and account:
        endpoint = f"https://{account}.table.core.windows.net"
    settings: TableSettings | None = None
    if conn:
        parts = _split_connection_string(conn)
        development = conn.replace(" ", "").lower().startswith("usedevelopmentstorage=true")
        if not development and (parts is None or not (parts.get("AccountName") or parts.get("TableEndpoint"))):
            problems.append("AzureWebJobsStorage must be a storage connection string (AccountName=...;AccountKey=...)")
        else:
            settings = TableSettings(table=table, connection_string=conn)
    elif endpoint:
        if not endpoint.startswith(("https://", "http://")):
            problems.append("AzureWebJobsStorage__tableServiceUri must be a URL such as https://<account>.table.core.windows.net")
        else:
            settings = TableSettings(table=table, endpoint=endpoint.rstrip("/"), client_id=client_id)
    else:
        problems.append(
            "AzureWebJobsStorage is missing (or set AzureWebJobsStorage__tableServiceUri / __accountName "
            "to use a managed identity)"
        )
    if problems or settings is None:
        raise ConfigurationError(problems)
    return settings


def sdk_log_level(env: Mapping[str, str] | None = None) -> int:
    """C2D_SDK_LOG_LEVEL as a logging level: a name (INFO) or a number (20); blank or unknown -> WARNING.

    Read at import time, so it must never raise: a bad value falls back to the default.
    """
    raw = (os.environ if env is None else env).get("C2D_SDK_LOG_LEVEL", "").strip()
    if not raw:
        return DEFAULT_SDK_LOG_LEVEL
    if raw.isdigit():
        return int(raw)
    level = logging.getLevelNamesMapping().get(raw.upper())
    return DEFAULT_SDK_LOG_LEVEL if level is None else level


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
    loaders = (
        load_iothub_settings, load_servicebus_settings, load_send_settings, load_feedback_settings,
        load_table_settings, load_status_settings,
    )
    for loader in loaders:
        try:
            loader(env)
        except ConfigurationError as error:
            problems.extend(error.problems)
    return problems
