"""RequestStatus: GET /api/requests/{requestId}: the status of every delivery of a fan-out request;
200 once all are final, 202 with Retry-After before."""

import azure.functions as func

from c2d import clients
from c2d.bindings import http_response, status_links
from c2d.http_api import request_status


def main(req: func.HttpRequest) -> func.HttpResponse:
    request_id = req.route_params.get("requestId", "")
    response = request_status(request_id, clients.get_status_store, clients.status_settings, status_links(req))
    return http_response(response)
