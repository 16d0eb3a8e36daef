import json
import logging
import os

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    logging.info("hello log marker %s", req.route_params.get("id"))
    payload = {
        "method": req.method,
        "params": dict(req.route_params),
        "query": dict(req.params),
        "body": req.get_body().decode(),
        "header": req.headers.get("x-test"),
        "greeting": os.environ.get("GREETING"),
        "url": req.url,
    }
    return func.HttpResponse(
        json.dumps(payload), status_code=200, mimetype="application/json", headers={"x-fixture": "hello"}
    )
