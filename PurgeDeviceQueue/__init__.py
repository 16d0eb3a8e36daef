"""PurgeDeviceQueue: DELETE /api/devices/{deviceId}/messages deletes every C2D message waiting for the device."""

import azure.functions as func

from c2d import clients
from c2d.bindings import http_response
from c2d.http_api import purge_device_queue


def main(req: func.HttpRequest) -> func.HttpResponse:
    return http_response(purge_device_queue(req.route_params.get("deviceId", ""), clients.get_registry))
