"""Link addresses: what a client attaches to, reduced to the path a service looks up."""

from __future__ import annotations

from urllib.parse import urlsplit

CBS_NODE = "$cbs"
MANAGEMENT_SUFFIX = "/$management"


def link_path(address: str | None) -> str:
    """`amqps://host:port/a/b`, `/a/b` and `a/b` -> `a/b` (case kept: services compare as they need)."""
    if not address:
        return ""
    parts = urlsplit(address)
    path = parts.path if parts.scheme else address
    return path.strip("/")


def is_management_path(path: str) -> bool:
    return path.lower().endswith(MANAGEMENT_SUFFIX)


def management_entity(path: str) -> str:
    """`queue/$management` -> `queue`."""
    return path[: -len(MANAGEMENT_SUFFIX)]
