import azure.functions as func


def main(req: func.HttpRequest) -> func.HttpResponse:  # function.json calls the binding "request"
    return func.HttpResponse("never")
