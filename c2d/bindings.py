"""Conversions between azure.functions binding types and the library's plain values."""

from __future__ import annotations

import json

import azure.functions as func

from c2d import clients
from c2d.http_api import ApiResponse, SendDependencies
from c2d.links import StatusLinks, links_for_request


def http_response(response: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(
        body=json.dumps(response.body, separators=(",", ":"), ensure_ascii=False),
        status_code=response.status,
        headers=dict(response.headers),
        mimetype="application/json",
        charset="utf-8",
    )


def status_links(req: func.HttpRequest) -> StatusLinks:
    """Links on the app's public URL, carrying the caller's function key (see c2d.links)."""
    return links_for_request(req.url, dict(req.headers), dict(req.params), clients.public_base_url())


def send_dependencies() -> SendDependencies:
    return SendDependencies(
        sender=clients.get_sender,
        send_settings=clients.send_settings,
        status_store=clients.get_status_store,
        status_settings=clients.status_settings,
        registry=clients.get_registry,
    )


def prefers_async(req: func.HttpRequest) -> bool:
    """RFC 7240 `Prefer: respond-async` (possibly among other preferences)."""
    prefer = req.headers.get("prefer") or ""
    return any(p.strip().lower().split("=", 1)[0] == "respond-async" for p in prefer.split(","))
