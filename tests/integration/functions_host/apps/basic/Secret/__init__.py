import os

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    # the host's own key settings must not leak into the worker
    leaked = [k for k in os.environ if k.startswith("LocalHost__")]
    return func.HttpResponse("secret ok" if not leaked else "leaked " + ",".join(leaked))
