import azure.functions as func
import module_that_is_not_installed_xyz  # noqa: F401


def main(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("never")
