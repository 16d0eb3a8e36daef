"""SendC2DFanOut: POST /api/messages sends one message to each of up to C2D_MAX_FAN_OUT (default 1,000)
listed devices, or to the devices a registry query selects: 207 with one result per device, or 202 with
`Prefer: respond-async`."""

import azure.functions as func

from c2d.bindings import http_response, prefers_async, send_dependencies, status_links
from c2d.http_api import send_to_devices


def main(req: func.HttpRequest) -> func.HttpResponse:
    response = send_to_devices(req.get_body(), send_dependencies(), status_links(req), respond_async=prefers_async(req))
    return http_response(response)
