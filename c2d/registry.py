"""IoT Hub registry adapter (azure-iot-hub's REST protocol client): device queries and queue purges.

`IoTHubRegistryManager` is not used: its constructor also builds an AMQP client and it closes that in
`__del__`. The protocol client underneath it does the same HTTP calls with nothing to clean up. A
client is built per call: these calls are rare, and a fresh client always carries a fresh token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import requests
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.iot.hub.auth import AzureIdentityCredentialAdapter, ConnectionStringAuthentication
from azure.iot.hub.protocol.iot_hub_gateway_service_ap_is import IotHubGatewayServiceAPIs
from azure.iot.hub.protocol.models import QuerySpecification
from msrest.exceptions import ClientRequestError, HttpOperationError

from c2d.config import IoTHubSettings
from c2d.errors import C2DError, DeviceNotFound, FieldProblem, Unauthorized, Unavailable, ValidationFailed

logger = logging.getLogger(__name__)
_PAGE_SIZE = 100  # the most twins IoT Hub returns in one query page


@dataclass(frozen=True)
class QueryResult:
    device_ids: list[str]
    pages: int


class Registry:
    def __init__(
        self,
        settings: IoTHubSettings,
        *,
        https_port: int | None = None,
        timeout_s: float = 10.0,
        credential_factory: Callable[[], object] | None = None,
    ) -> None:
        self._settings = settings
        self._https_port = https_port
        self._timeout_s = timeout_s
        self._credential_factory = credential_factory
        self._credential: object | None = None

    def query_device_ids(self, query: str, cap: int) -> QueryResult:
        """Every device id the query selects, paging through the results.

        Raises `ValidationFailed` (field `query`) when IoT Hub refuses the query or it selects more
        than `cap` devices, and `Unauthorized` / `Unavailable` when the registry cannot be used.
        """
        client = self._client()
        device_ids: list[str] = []
        continuation: str | None = None
        pages = 0
        while True:
            response = self._call(
                "query the device registry", partial(self._twins_page, client, query, continuation), query=True
            )
            pages += 1
            for twin in response.output or []:
                device_id = getattr(twin, "device_id", None)
                if device_id:
                    device_ids.append(str(device_id))
            if len(device_ids) > cap:
                raise ValidationFailed(
                    [FieldProblem("query", "max-devices",
                                  f"the query selects more than {cap} devices (C2D_MAX_QUERY_DEVICES); narrow it")]
                )
            continuation = (response.headers or {}).get("x-ms-continuation")
            if not continuation:
                return QueryResult(list(dict.fromkeys(device_ids)), pages)

    def _twins_page(self, client: IotHubGatewayServiceAPIs, query: str, continuation: str | None) -> Any:
        return client.query.get_twins(
            QuerySpecification(query=query), continuation, str(_PAGE_SIZE), None, True, **self._options()
        )

    def purge(self, device_id: str) -> int:
        """Delete every message waiting in the device's C2D queue; returns how many there were."""
        client = self._client()
        result = self._call(
            "purge the device's queue",
            lambda: client.cloud_to_device_messages.purge_cloud_to_device_message_queue(
                device_id, **self._options()
            ),
            device_id=device_id,
        )
        return int(getattr(result, "total_messages_purged", 0) or 0)

    # ---- helpers ----------------------------------------------------------------------------------
    def _client(self) -> IotHubGatewayServiceAPIs:
        settings = self._settings
        base_url = f"https://{settings.hostname}" + (f":{self._https_port}" if self._https_port else "")
        if settings.uses_managed_identity:
            if self._credential is None:
                self._credential = (self._credential_factory or _default_credential)()
            credentials = AzureIdentityCredentialAdapter(self._credential)
        else:
            credentials = ConnectionStringAuthentication.create_with_parsed_values(
                settings.hostname, settings.policy_name or "", settings.key or ""
            )
        return IotHubGatewayServiceAPIs(credentials, base_url)

    def _options(self) -> dict[str, object]:
        return {"timeout": self._timeout_s}

    def _call(self, action: str, call: Callable[[], Any], *, query: bool = False, device_id: str = "") -> Any:
        try:
            return call()
        except HttpOperationError as error:
            raise _http_error(error, action, query=query, device_id=device_id) from None
        except ClientAuthenticationError as error:
            raise Unauthorized(
                f"the app's identity could not get a token for IoT Hub: {type(error).__name__}"
            ) from None
        except (ClientRequestError, requests.RequestException, AzureError, OSError) as error:
            logger.warning("IoT Hub registry call failed (%s): %s", action, type(error).__name__)
            raise Unavailable(
                f"could not {action}: IoT Hub's registry did not answer ({type(error).__name__})"
            ) from None


def _http_error(error: HttpOperationError, action: str, *, query: bool, device_id: str) -> C2DError:
    response = error.response
    status = response.status_code if response is not None else 0
    text = _service_message(response)
    if status == 400 and query:
        return ValidationFailed([FieldProblem("query", "iothub-query", f"IoT Hub refused the query: {text}")])
    if status == 404 and device_id:
        return DeviceNotFound(f"device {device_id} is not registered in the IoT hub")
    if status in (401, 403):
        return Unauthorized(
            f"IoT Hub refused the app's credentials to {action} (needs registry read / service connect)"
        )
    return Unavailable(f"could not {action}: IoT Hub answered {status} {text}".strip())


def _service_message(response: requests.Response | None) -> str:
    """IoT Hub's error text (`{"Message": "ErrorCode:...;text", ...}`), without tracking ids."""
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    message = str(body.get("Message") or body.get("message") or "") if isinstance(body, dict) else ""
    return message.split(";", 1)[1].strip() if message.startswith("ErrorCode:") and ";" in message else message[:300]


def _default_credential() -> object:
    from azure.identity import DefaultAzureCredential  # imported only for managed-identity setups

    return DefaultAzureCredential()
