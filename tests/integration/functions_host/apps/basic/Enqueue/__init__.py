import typing

import azure.functions as func


# typing.List, not list[str]: the v1 worker's annotation check only understands typing generics
def main(req: func.HttpRequest, out: func.Out[typing.List[str]]) -> func.HttpResponse:  # noqa: UP006
    bodies = req.get_body().decode().split("\n")
    out.set(bodies)
    return func.HttpResponse(f"queued {len(bodies)}", status_code=202)
