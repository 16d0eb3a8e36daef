import os

import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:
    os._exit(3)  # the worker process dies mid-invocation
