"""FeedbackProcessor: drains IoT Hub delivery feedback and publishes one outcome per record."""

import azure.functions as func

from c2d import clients
from c2d.feedback_drain import drain_feedback


def main(timer: func.TimerRequest) -> None:
    publisher = clients.get_publisher()  # fails on bad settings before any feedback is taken
    ledger = clients.get_status_store()
    drain_feedback(clients.get_feedback_receiver(), publisher, ledger, clients.feedback_settings())
