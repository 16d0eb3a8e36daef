import azure.functions as func


def main(req: func.HttpRequest, res: func.Out[func.HttpResponse]) -> None:
    if req.params.get("fail"):
        raise ValueError("echo was asked to fail")
    res.set(func.HttpResponse(req.get_body(), status_code=201, mimetype="text/plain"))
