"""The app settings that point this app at the local emulators (what local.settings.json would hold)."""

from __future__ import annotations

from pathlib import Path

#: Local-only keys: they open nothing but this repository's local Functions host.
FUNCTION_KEY = "local-function-key"
MASTER_KEY = "local-master-key"


def app_settings(
    *,
    iothub_connection_string: str,
    amqp_port: int,
    https_port: int,
    ca_bundle: Path,
    servicebus_connection_string: str,
    storage_connection_string: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    return {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": storage_connection_string,
        "IOTHUB_CONNECTION_STRING": iothub_connection_string,
        "IOTHUB_AMQP_PORT": str(amqp_port),
        "IOTHUB_HTTPS_PORT": str(https_port),
        "IOTHUB_SEND_TIMEOUT_SECONDS": "10",
        "SSL_CERT_FILE": str(ca_bundle),
        "REQUESTS_CA_BUNDLE": str(ca_bundle),
        "SERVICEBUS_CONNECTION": servicebus_connection_string,
        "SERVICEBUS_RETRY_TOTAL": "0",
        "OUTCOME_TOPIC": "c2d-outcomes",
        "FEEDBACK_SCHEDULE": "*/2 * * * * *",
        "FEEDBACK_MAX_DRAIN_SECONDS": "1.5",
        "FEEDBACK_IDLE_WAIT_SECONDS": "0.3",
        "LocalHost__FunctionKey": FUNCTION_KEY,
        "LocalHost__MasterKey": MASTER_KEY,
        **(extra or {}),
    }
