import azure.functions as func
from shared.record import record


def main(timer: func.TimerRequest) -> None:
    record("Boot", past_due=timer.past_due)
