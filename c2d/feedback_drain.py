"""FeedbackProcessor's logic: drain the feedback endpoint for a bounded time, publish, then settle.

Order matters for "nothing lost": a feedback message is accepted only after every outcome from
it is published; if publishing fails it is released and IoT Hub redelivers it (duplicates from
the retry are dropped by the topic's duplicate detection, outcome ids being deterministic).
A message that can never be parsed is rejected (dead-lettered) and logged.

Every release costs one of the message's deliveries, and IoT Hub drops feedback after its
maxDeliveryCount (10 by default). So no feedback is taken while the topic is out of reach: each
run first opens the topic link, and if that fails it leaves the feedback on the hub untouched and
tries again next run. An outage then costs at most the one release of the run it began in.
The feedback link is closed at the end of every run, so nothing is prefetched and locked between runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from c2d.config import FeedbackSettings
from c2d.errors import C2DError
from c2d.feedback import FeedbackRecord, MalformedFeedback, parse_feedback
from c2d.logs import log_event
from c2d.outcomes import Outcome, outcome_from_feedback
from c2d.ports import FeedbackSource, OutcomeLedger, OutcomeSink, SettleableFeedback
from c2d.status_store import OutcomeRecord, RequestContext

logger = logging.getLogger("c2d.feedback")
OUTCOMES_PER_LOG_LINE = 64


@dataclass
class DrainReport:
    received: int = 0
    accepted: int = 0
    released: int = 0
    rejected: int = 0
    published: int = 0
    stopped: str = ""
    #: Seconds spent in each stage (wall clock), for the drain log line and the benchmark's split.
    receive_s: float = 0.0
    lookup_s: float = 0.0
    publish_s: float = 0.0
    record_s: float = 0.0
    settle_s: float = 0.0


def drain_feedback(
    source: FeedbackSource,
    publisher: OutcomeSink,
    ledger: OutcomeLedger,
    settings: FeedbackSettings,
    clock: Callable[[], float] = time.monotonic,
) -> DrainReport:
    report = DrainReport()
    deadline = clock() + settings.max_drain_s
    try:
        publisher.check_reachable()
        ledger.check_reachable()
    except C2DError as error:
        report.stopped = "unreachable"
        log_event(
            logger, "feedback-paused", logging.WARNING, error=error.code, reason=error.message,
            action="feedback left on IoT Hub until the outcome topic and the status table can be reached",
        )
        return report
    try:
        _drain(source, publisher, ledger, settings, clock, deadline, report)
    finally:
        source.close()
    log_event(logger, "feedback-drain", logging.INFO, **_rounded(vars(report)))
    return report


def _drain(
    source: FeedbackSource,
    publisher: OutcomeSink,
    ledger: OutcomeLedger,
    settings: FeedbackSettings,
    clock: Callable[[], float],
    deadline: float,
    report: DrainReport,
) -> None:
    longest = 0.0  # the slowest batch so far: a run stops before it would overrun its time
    while True:
        batch_started = clock()
        remaining = deadline - batch_started
        if remaining <= 0 or remaining < longest:
            # Ending inside max_drain_s matters: an occurrence of the timer that comes while a run is still
            # going is skipped, not queued, so overrunning the period would leave the backlog for a whole period.
            report.stopped = "time-limit"
            break
        started = time.perf_counter()
        try:
            batch = source.receive(settings.batch_size, min(settings.idle_wait_s, remaining))
        except C2DError as error:
            log_event(logger, "feedback-receive-failed", logging.ERROR, error=error.code, reason=error.message)
            report.stopped = "receive-failed"
            break
        finally:
            report.receive_s += time.perf_counter() - started
        if not batch:
            report.stopped = "drained"
            break
        report.received += len(batch)
        if not _process_batch(batch, publisher, ledger, report):
            report.stopped = "publish-failed"
            break
        longest = max(longest, clock() - batch_started)


def _process_batch(
    batch: Sequence[SettleableFeedback], publisher: OutcomeSink, ledger: OutcomeLedger, report: DrainReport
) -> bool:
    parsed: list[tuple[SettleableFeedback, list[FeedbackRecord]]] = []
    for feedback in batch:
        if feedback.delivery_count > 0:
            log_event(
                logger, "feedback-redelivered", logging.WARNING, deliveryCount=feedback.delivery_count,
                note="IoT Hub drops feedback after its maxDeliveryCount (default 10)",
            )
        try:
            records = parse_feedback(feedback.body)
        except MalformedFeedback as error:
            log_event(
                logger, "feedback-malformed", logging.ERROR, reason=str(error), size=len(feedback.body),
                head=feedback.body[:200].decode("utf-8", errors="replace"),
            )
            _settle(feedback.reject, "reject", str(error))
            report.rejected += 1
            continue
        parsed.append((feedback, records))

    records = [record for _, records in parsed for record in records]
    try:
        started = time.perf_counter()
        contexts = ledger.contexts([(r.device_id, r.original_message_id) for r in records])
        outcomes = [_outcome(record, contexts) for record in records]
        looked_up = time.perf_counter()
        report.lookup_s += looked_up - started
        publisher.publish(outcomes)
        published = time.perf_counter()
        report.publish_s += published - looked_up
        # Recorded after publishing, before accepting: a crash in between redelivers the feedback, which
        # publishes again (dropped as duplicates) and records the same final state again.
        ledger.record_outcomes(
            [OutcomeRecord(o.device_id, o.original_message_id, o.status, o.description, o.enqueued_time_utc)
             for o in outcomes]
        )
        report.record_s += time.perf_counter() - published
    except C2DError as error:
        log_event(
            logger, "feedback-publish-failed", logging.ERROR, error=error.code, reason=error.message,
            feedbackMessages=len(parsed), outcomes=len(records),
        )
        for feedback, _ in parsed:
            _settle(feedback.release, "release")
            report.released += 1
        return False

    report.published += len(outcomes)
    _log_outcomes(outcomes)
    started = time.perf_counter()
    for feedback, _ in parsed:
        if _settle(feedback.accept, "accept"):
            report.accepted += 1
    report.settle_s += time.perf_counter() - started
    return True


def _log_outcomes(outcomes: Sequence[Outcome]) -> None:
    """One `c2d.outcome` line per (up to) OUTCOMES_PER_LOG_LINE outcomes, each with its messageId, deviceId,
    status, correlationId and description (what operators search on).

    Not one line per outcome: every line goes through the worker's gRPC channel to the host and on to
    Application Insights, and at thousands of outcomes per second that per-line cost was a large part of a
    drain. 64 is IoT Hub's feedback batch, and 64 outcomes stay far below the 32 KB of one trace message.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    for start in range(0, len(outcomes), OUTCOMES_PER_LOG_LINE):
        chunk = outcomes[start:start + OUTCOMES_PER_LOG_LINE]
        log_event(
            logger, "outcome", logging.INFO, count=len(chunk),
            outcomes=[
                {**o.log_fields(), "correlationId": o.correlation_id, "description": o.description} for o in chunk
            ],
        )


def _rounded(fields: Mapping[str, object]) -> dict[str, object]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in fields.items()}


def _outcome(record: FeedbackRecord, contexts: Mapping[tuple[str, str], RequestContext]) -> Outcome:
    context = contexts.get((record.device_id, record.original_message_id))
    if context is None:
        return outcome_from_feedback(record)
    return outcome_from_feedback(record, context.correlation_id, context.properties)


def _settle(action: Callable[..., None], name: str, *args: str) -> bool:
    try:
        action(*args)
    except C2DError as error:
        # Not fatal: an unsettled message is redelivered after its lock expires, and its
        # outcomes, published again, are dropped as duplicates.
        log_event(logger, "feedback-settle-failed", logging.WARNING, action=name, reason=error.message)
        return False
    return True
