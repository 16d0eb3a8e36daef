import datetime

import azure.functions as func
from shared.record import record


def main(timer: func.TimerRequest) -> None:
    record(
        "Tick",
        at=datetime.datetime.now(datetime.UTC).isoformat(),
        past_due=timer.past_due,
        schedule_status=timer.schedule_status,
        schedule=timer.schedule,
    )
