"""Keys out of printed text: the local tools show connection strings with their keys masked.

Even local development keys stay out of terminals and logs, so that no output of this project ever
has to be told apart from one holding a real key. The full strings live in files only the user can read.
"""

from __future__ import annotations

import re

MASK = "***"
_KEY = re.compile(r"\b(SharedAccessKey|AccountKey)=[^;]*")


def redact_keys(text: str) -> str:
    """`...;SharedAccessKey=abc;...` -> `...;SharedAccessKey=***;...` (also `AccountKey`)."""
    return _KEY.sub(lambda m: f"{m.group(1)}={MASK}", text)


def with_key(connection_string: str, key: str) -> str:
    """Put a known key back into a connection string printed with `redact_keys`."""
    return _KEY.sub(lambda m: f"{m.group(1)}={key}", connection_string, count=1)
