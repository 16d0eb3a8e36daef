"""One structured line per event: `c2d.<event> {json}`.

The Functions host forwards only the message text to Application Insights, so the fields travel
in the text; query them with `traces | where message startswith "c2d." |
extend f = parse_json(substring(message, indexof(message, "{")))`.
"""

from __future__ import annotations

import json
import logging


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: object) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, "c2d.%s %s", event, json.dumps(fields, separators=(",", ":"), default=str))
