"""Status URLs handed to callers (Location headers, `statusUrl` fields).

They are absolute, on the app's public base URL (`C2D_PUBLIC_BASE_URL`, else the forwarded host,
else the host the request came in on), and carry the caller's function key as `code=` when the
caller used one: a Logic App follows `Location` with the original action's authentication, which
does not re-send an `x-functions-key` header.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

ROUTE_PREFIX = "/api"


@dataclass(frozen=True)
class StatusLinks:
    base_url: str
    function_key: str | None = field(default=None, repr=False)

    def delivery(self, device_id: str, message_id: str) -> str:
        path = f"{ROUTE_PREFIX}/devices/{_segment(device_id)}/messages/{_segment(message_id)}"
        return self._url(path)

    def request(self, request_id: str) -> str:
        return self._url(f"{ROUTE_PREFIX}/requests/{_segment(request_id)}")

    def _url(self, path: str) -> str:
        query = "?" + urllib.parse.urlencode({"code": self.function_key}) if self.function_key else ""
        return self.base_url + path + query


def links_for_request(
    url: str, headers: Mapping[str, str], params: Mapping[str, str], public_base_url: str | None
) -> StatusLinks:
    """Status links for a request that came in on `url` with these headers and query parameters."""
    lowered = {k.lower(): v for k, v in headers.items()}
    key = lowered.get("x-functions-key") or params.get("code") or None
    if public_base_url:
        return StatusLinks(public_base_url.rstrip("/"), key)
    parts = urllib.parse.urlsplit(url)
    host = (lowered.get("x-forwarded-host") or parts.netloc).split(",")[0].strip()
    scheme = (lowered.get("x-forwarded-proto") or parts.scheme or "https").split(",")[0].strip()
    return StatusLinks(f"{scheme}://{host}", key)


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")
