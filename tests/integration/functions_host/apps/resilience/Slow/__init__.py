import time

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(120)  # far beyond functionTimeout (2 s): the host must give up and restart the worker
    return func.HttpResponse("too late")
