import logging

import azure.functions as func
from shared.record import record


def main(msg: func.QueueMessage) -> None:
    body = msg.get_body().decode()
    record(
        "Work",
        id=msg.id,
        body=body,
        dequeue_count=msg.dequeue_count,
        pop_receipt=msg.pop_receipt,
        insertion_time=msg.insertion_time,
        expiration_time=msg.expiration_time,
        next_visible=msg.time_next_visible,
    )
    if body.startswith("fail"):
        raise RuntimeError(f"asked to fail: {body}")
    logging.info("work done %s", body)
