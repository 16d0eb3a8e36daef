"""Conversions between azure.functions binding types and the library's plain results."""

from __future__ import annotations

import json

import azure.functions as func

from c2d.http_api import ApiResponse


def http_response(response: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(
        body=json.dumps(response.body, separators=(",", ":"), ensure_ascii=False),
        status_code=response.status,
        headers=dict(response.headers),
        mimetype="application/json",
        charset="utf-8",
    )
