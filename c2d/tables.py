"""Azure Table storage access shared by the send journal (and the delivery status store).

One `TableClient` per process, on the Functions storage account: a connection string
(`AzureWebJobsStorage`) or the app's managed identity (`AzureWebJobsStorage__tableServiceUri`).
Every call is bounded (short connect/read timeouts, two retries) because it sits on the send path.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

from c2d.config import TableSettings
from c2d.errors import StoreUnavailable

logger = logging.getLogger(__name__)
_CLIENT_OPTIONS = {"retry_total": 2, "connection_timeout": 5, "read_timeout": 10}
#: Azurite's published development account, for `UseDevelopmentStorage=true`.
_DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def table_key(value: str) -> str:
    """A PartitionKey/RowKey for any id: Table keys may not hold / \\ # ? or control characters."""
    return urllib.parse.quote(value, safe="")


class Table:
    """The app's table, created on first use. Thread-safe (the SDK client is)."""

    def __init__(self, settings: TableSettings, *, credential_factory: Callable[[], object] | None = None) -> None:
        self._settings = settings
        self._credential_factory = credential_factory
        self._client: TableClient | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._settings.table

    def client(self) -> TableClient:
        """The table client; raises `StoreUnavailable` if the table cannot be created or reached."""
        with self._lock:
            if self._client is None:
                with storage_errors("open the status table"):
                    service = self._service()
                    with suppress(ResourceExistsError):
                        service.create_table(self._settings.table)
                    self._client = service.get_table_client(self._settings.table)
            return self._client

    def _service(self) -> TableServiceClient:
        settings = self._settings
        if settings.connection_string:
            conn = settings.connection_string
            if conn.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
                conn = _DEVELOPMENT_STORAGE
            return TableServiceClient.from_connection_string(conn, **_CLIENT_OPTIONS)
        credential = (self._credential_factory or _default_credential(settings.client_id))()
        return TableServiceClient(settings.endpoint or "", credential=credential, **_CLIENT_OPTIONS)  # type: ignore[arg-type]

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Turn the SDK's errors into `StoreUnavailable` naming what failed (never a secret)."""
    try:
        yield
    except AzureError as error:
        logger.warning("Table storage failed to %s: %s", action, type(error).__name__)
        raise StoreUnavailable(f"could not {action}: {type(error).__name__}") from None


def _default_credential(client_id: str | None) -> Callable[[], object]:
    def build() -> object:
        from azure.identity import DefaultAzureCredential  # imported only for managed-identity setups

        return DefaultAzureCredential(managed_identity_client_id=client_id)

    return build
