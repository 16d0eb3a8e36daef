"""Conversions between host-side values and FunctionRpc TypedData / RpcHttp messages."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def typed_data(protos: Any, value: Any) -> Any:
    """Python value -> TypedData the way the host marshals trigger data and metadata."""
    if value is None:
        return protos.TypedData()
    if isinstance(value, bytes):
        return protos.TypedData(bytes=value)
    if isinstance(value, str):
        return protos.TypedData(string=value)
    if isinstance(value, bool):
        return protos.TypedData(json=json.dumps(value))
    # Numbers travel as JSON, as the Azure host sends them (the worker cannot decode TypedData.int here).
    return protos.TypedData(json=json.dumps(value))


def queue_trigger_metadata(
    protos: Any,
    *,
    message_id: str,
    dequeue_count: int,
    inserted: dt.datetime | None,
    expires: dt.datetime | None,
    next_visible: dt.datetime | None,
    pop_receipt: str,
    body: str | None,
) -> dict[str, Any]:
    """Trigger metadata of a queue message: strings as string, DequeueCount and times as JSON."""

    metadata = {
        "Id": typed_data(protos, message_id),
        "DequeueCount": protos.TypedData(json=json.dumps(dequeue_count)),
        "InsertionTime": protos.TypedData(json=json.dumps(_iso(inserted))),
        "ExpirationTime": protos.TypedData(json=json.dumps(_iso(expires))),
        "NextVisibleTime": protos.TypedData(json=json.dumps(_iso(next_visible))),
        "PopReceipt": typed_data(protos, pop_receipt),
    }
    if body is not None:
        metadata["QueueTrigger"] = typed_data(protos, body)
    return metadata


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def rpc_http_request(
    protos: Any,
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    query: dict[str, str],
    params: dict[str, str],
    body: bytes,
) -> Any:
    return protos.TypedData(
        http=protos.RpcHttp(
            method=method,
            url=url,
            headers=headers,
            query=query,
            params=params,
            body=protos.TypedData(bytes=body),
        )
    )


def body_bytes(data: Any) -> tuple[bytes, str | None]:
    """TypedData body -> (bytes, default content type)."""
    kind = data.WhichOneof("data")
    if kind == "bytes":
        return data.bytes, "application/octet-stream"
    if kind == "string":
        return data.string.encode(), "text/plain; charset=utf-8"
    if kind == "json":
        return data.json.encode(), "application/json"
    if kind == "int":
        return str(data.int).encode(), "text/plain; charset=utf-8"
    if kind == "double":
        return repr(data.double).encode(), "text/plain; charset=utf-8"
    return b"", None


def http_result(data: Any) -> HttpResult:
    """TypedData returned for an `http` output binding -> HttpResult."""
    kind = data.WhichOneof("data")
    if kind != "http":
        # A function may return a plain value to its http binding: the host answers 200 with it.
        body, ctype = body_bytes(data)
        return HttpResult(200, {"Content-Type": ctype} if ctype and body else {}, body)
    http = data.http
    status = int(http.status_code) if http.status_code else 200
    headers = dict(http.headers)
    body, ctype = body_bytes(http.body)
    if ctype and body and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = ctype
    return HttpResult(status, headers, body)
