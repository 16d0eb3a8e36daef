"""Trusting the local CA in this process, the way a user would: through environment variables."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

#: OpenSSL users (uamqp, paho, Python's ssl, aiohttp) read SSL_CERT_FILE; requests (azure-iot-hub's
#: registry calls through msrest) reads REQUESTS_CA_BUNDLE.
TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


@contextlib.contextmanager
def trusting(ca_bundle: Path) -> Iterator[None]:
    """Point SSL_CERT_FILE and REQUESTS_CA_BUNDLE at `ca_bundle` for the block; restore them after."""
    previous = {name: os.environ.get(name) for name in TRUST_VARIABLES}
    os.environ.update(dict.fromkeys(TRUST_VARIABLES, str(ca_bundle)))
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
