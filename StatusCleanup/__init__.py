"""StatusCleanup: once a day, removes status and journal rows older than C2D_STATUS_RETENTION_DAYS (7)."""

import azure.functions as func

from c2d import clients
from c2d.status_cleanup import remove_old_rows


def main(timer: func.TimerRequest) -> None:
    remove_old_rows(clients.get_status_store(), clients.status_settings())
