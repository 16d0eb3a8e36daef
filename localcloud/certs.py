"""Local CA + `localhost` server certificate for the emulators' TLS endpoints.

Created once under `<state_dir>/certs/` and reused on later starts, so a client that trusts the
CA keeps trusting it. `ca-bundle.pem` holds certifi's roots plus the local CA: point
`SSL_CERT_FILE` at it and uamqp, paho (azure-iot-device), requests/aiohttp trust the emulators
while still trusting real Azure endpoints.
"""

from __future__ import annotations

import fcntl
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme

from localcloud.paths import STATE_DIR as DEFAULT_STATE_DIR

SERVER_IDENTITIES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path  # the local CA alone: NODE_EXTRA_CA_CERTS, server_verification_cert
    ca_key: Path
    server_cert: Path  # leaf + chain
    server_key: Path
    ca_bundle: Path  # certifi roots + local CA: SSL_CERT_FILE

    def server_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def ssl_cert_file_hint(self) -> str:
        return f"export SSL_CERT_FILE={self.ca_bundle}  # trust the local CA (plus certifi's roots)"


def _paths(state_dir: Path) -> CertPaths:
    d = state_dir / "certs"
    return CertPaths(
        ca_cert=d / "ca.pem",
        ca_key=d / "ca-key.pem",
        server_cert=d / "server.pem",
        server_key=d / "server-key.pem",
        ca_bundle=d / "ca-bundle.pem",
    )


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    if private:
        tmp.chmod(0o600)
    os.replace(tmp, path)  # atomic: concurrent starters never see half a file


def ensure_certs(state_dir: Path | str = DEFAULT_STATE_DIR) -> CertPaths:
    """Create the CA and server certificate if missing; return their paths either way.

    Serialised with a file lock: emulators started together must not mint two different CAs.
    """
    paths = _paths(Path(state_dir))
    paths.ca_cert.parent.mkdir(parents=True, exist_ok=True)
    with (paths.ca_cert.parent / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _create_missing(paths)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return paths


def _create_missing(paths: CertPaths) -> None:
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        ca = trustme.CA(key_type=trustme.KeyType.RSA)
        _write(paths.ca_key, ca.private_key_pem.bytes(), private=True)
        _write(paths.ca_cert, ca.cert_pem.bytes())
        for stale in (paths.server_cert, paths.server_key):
            stale.unlink(missing_ok=True)
    if not (paths.server_cert.exists() and paths.server_key.exists()):
        ca = trustme.CA.from_pem(paths.ca_cert.read_bytes(), paths.ca_key.read_bytes())
        leaf = ca.issue_cert(*SERVER_IDENTITIES, key_type=trustme.KeyType.RSA)
        _write(paths.server_key, leaf.private_key_pem.bytes(), private=True)
        _write(paths.server_cert, b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    bundle = Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n" + paths.ca_cert.read_bytes()
    if not paths.ca_bundle.exists() or paths.ca_bundle.read_bytes() != bundle:
        _write(paths.ca_bundle, bundle)
